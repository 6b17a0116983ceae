-- wrk script for the sluice benchmark.
-- Usage: wrk ... -s bench/wrk/chat.lua URL -- BODY_FILE [BEARER_KEY]
-- Sends POST requests with a fixed JSON chat body and, when the run ends,
-- prints one machine-readable line starting with "BENCH_RESULT" that
-- bench/run.sh parses (latencies in microseconds).

local function read_file(path)
   local f, err = io.open(path, "rb")
   if not f then
      error("chat.lua: cannot open body file: " .. tostring(err))
   end
   local data = f:read("*a")
   f:close()
   return (data:gsub("%s+$", ""))
end

function init(args)
   local body_file = args[1]
   if body_file == nil or body_file == "" then
      error("chat.lua: pass the body file after --")
   end
   local key = args[2] or "sk-bench-master-key"
   wrk.method = "POST"
   wrk.body = read_file(body_file)
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json, text/event-stream"
   wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local rps = 0
   if secs > 0 then
      rps = summary.requests / secs
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%.0f duration_us=%.0f rps=%.2f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.1f bytes=%.0f non2xx=%.0f err_connect=%.0f err_read=%.0f err_write=%.0f err_timeout=%.0f\n",
      summary.requests, summary.duration, rps,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean, summary.bytes,
      e.status, e.connect, e.read, e.write, e.timeout))
end
