-- wrk script of `make bench`: Mastodon API requests with a bearer token per request (drawn
-- from a file, one a line) and, for POSTs, a form body made unique by a counter. The `done`
-- hook prints one JSON line (prefixed BENCH_JSON) that fedi-bench parses.
-- Arguments (after `--`): METHOD PATH TOKENS_FILE [STATUS_TEXT]

local method, path, status_text
local tokens = {}
local counter = 0

function init(args)
  method, path, status_text = args[1], args[2], args[4]
  for line in io.lines(args[3]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  -- Threads start together: seed each one differently.
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + #tostring({}))
end

function request()
  counter = counter + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)] }
  local body = nil
  if status_text then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = "status=" .. status_text .. "+" .. counter .. "+" .. math.random(1e9)
  end
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
