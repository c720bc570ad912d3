-- script.lua — a server-side script that reads one key and answers its
-- value: kvd GET /BUCKET/scripts/getone/run?k=key:N (run.sh uploads
-- "kv.say(kv.get(kv.args.k))" as getone); webdis
-- GET /EVAL/return redis.call('GET',KEYS[1])/1/key:N.txt (URL-encoded; '.'
-- must be %2e for webdis). Both compile once and cache the compiled script.
local c = dofile(os.getenv("KVB_HTTP_DIR") .. "/common.lua")
setup = c.setup
done = c.done
local lua_get = "return%20redis%2ecall%28%27GET%27%2CKEYS%5B1%5D%29"
function init(args)
   c.parse(args)
   c.seed()
end
function request()
   if c.target == "kvd" then
      return wrk.format("GET", "/" .. c.bucket .. "/scripts/getone/run?k=" .. c.key())
   end
   return wrk.format("GET", "/EVAL/" .. lua_get .. "/1/" .. c.key() .. ".txt")
end
