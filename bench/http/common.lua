-- common.lua — shared by the wrk scripts of bench/http (loaded with dofile
-- from $KVB_HTTP_DIR). Arguments after wrk's "--":
--   TARGET (kvd|webdis)  NKEYS (preloaded keys key:0..NKEYS-1)  VALUE_SIZE  BUCKET
-- Every script draws keys uniformly from the preloaded set, so both servers
-- answer hits of the same size. done() prints one machine-readable line that
-- bench/http/run.sh parses.
local M = {}

function M.parse(args)
   M.target = args[1] or "kvd"
   M.nkeys = tonumber(args[2] or "100000")
   M.vsize = tonumber(args[3] or "100")
   M.bucket = args[4] or "default"
   M.value = string.rep("v", M.vsize)
   if M.target ~= "kvd" and M.target ~= "webdis" then
      error("target must be kvd or webdis, not " .. tostring(M.target))
   end
end

function M.key()
   return "key:" .. math.random(0, M.nkeys - 1)
end

local seeded = 0
function M.setup(thread)
   seeded = seeded + 1
   thread:set("thread_id", seeded)
end

function M.seed()
   math.randomseed(os.time() + (thread_id or 0) * 7919)
end

function M.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK requests=%d duration_us=%d socket_errors=%d non2xx=%d p50_us=%d p99_us=%d p999_us=%d\n",
      summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end

return M
