-- get.lua — GET of one preloaded value: kvd GET /BUCKET/key:N; webdis
-- GET /GET/key:N.txt (raw value as text/plain, no JSON wrapping, so both
-- servers send the same body).
local c = dofile(os.getenv("KVB_HTTP_DIR") .. "/common.lua")
setup = c.setup
done = c.done
function init(args)
   c.parse(args)
   c.seed()
end
function request()
   if c.target == "kvd" then
      return wrk.format("GET", "/" .. c.bucket .. "/" .. c.key())
   end
   return wrk.format("GET", "/GET/" .. c.key() .. ".txt")
end
