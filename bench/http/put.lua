-- put.lua — overwrite one preloaded key with a VALUE_SIZE body: kvd PUT
-- /BUCKET/key:N; webdis PUT /SET/key:N (the body is SET's last argument).
local c = dofile(os.getenv("KVB_HTTP_DIR") .. "/common.lua")
setup = c.setup
done = c.done
function init(args)
   c.parse(args)
   c.seed()
end
function request()
   local headers = {["Content-Type"] = "application/octet-stream"}
   if c.target == "kvd" then
      return wrk.format("PUT", "/" .. c.bucket .. "/" .. c.key(), headers, c.value)
   end
   return wrk.format("PUT", "/SET/" .. c.key(), headers, c.value)
end
