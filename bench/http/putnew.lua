-- putnew.lua — durable-write load: every request PUTs a key never written
-- before (new:THREAD:COUNTER, unique across wrk's threads) with a VALUE_SIZE
-- body: kvd PUT /BUCKET/new:T:N; webdis PUT /SET/new:T:N. Run it with
-- `run.sh --sync always`, which also starts Redis with appendfsync always.
local c = dofile(os.getenv("KVB_HTTP_DIR") .. "/common.lua")
setup = c.setup
done = c.done
local counter = 0
function init(args)
   c.parse(args)
   c.seed()
end
function request()
   counter = counter + 1
   local key = "new:" .. (thread_id or 0) .. ":" .. counter
   local headers = {["Content-Type"] = "application/octet-stream"}
   if c.target == "kvd" then
      return wrk.format("PUT", "/" .. c.bucket .. "/" .. key, headers, c.value)
   end
   return wrk.format("PUT", "/SET/" .. key, headers, c.value)
end
