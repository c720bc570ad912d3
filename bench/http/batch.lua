-- batch.lua — 100 gets in one request: kvd POST /BUCKET/ with
-- {"ops":[{"get":"key:N"}, ...]}; webdis GET /MGET/key:A/key:B/... (JSON
-- answer on both sides). run.sh reports keys/s = 100 x requests/s.
local c = dofile(os.getenv("KVB_HTTP_DIR") .. "/common.lua")
setup = c.setup
done = c.done
local per = 100
function init(args)
   c.parse(args)
   c.seed()
end
function request()
   local keys = {}
   for i = 1, per do
      keys[i] = c.key()
   end
   if c.target == "kvd" then
      local ops = {}
      for i = 1, per do
         ops[i] = '{"get":"' .. keys[i] .. '"}'
      end
      local body = '{"ops":[' .. table.concat(ops, ",") .. ']}'
      return wrk.format("POST", "/" .. c.bucket .. "/", {["Content-Type"] = "application/json"}, body)
   end
   return wrk.format("GET", "/MGET/" .. table.concat(keys, "/"))
end
