-- incr.lua — atomic increment of one of 1000 counters: kvd PATCH
-- /BUCKET/ctr:N with body "+1"; webdis GET /INCR/ctr:N.txt.
local c = dofile(os.getenv("KVB_HTTP_DIR") .. "/common.lua")
setup = c.setup
done = c.done
function init(args)
   c.parse(args)
   c.seed()
end
function request()
   local ctr = "ctr:" .. math.random(0, 999)
   if c.target == "kvd" then
      return wrk.format("PATCH", "/" .. c.bucket .. "/" .. ctr, nil, "+1")
   end
   return wrk.format("GET", "/INCR/" .. ctr .. ".txt")
end
