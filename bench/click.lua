-- wrk script for the click benchmark: every request carries a different
-- User-Agent, so for pixelrelay every request is a new (non-duplicate)
-- click; answers other than 302 are counted and reported.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local n = 0
local bad = 0

function request()
  n = n + 1
  return wrk.format("GET", nil, {
    ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 " ..
      "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 bench/" .. tostring(tid) .. "." .. n,
  })
end

function response(status, headers, body)
  if status ~= 302 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("bad") or 0)
  end
  io.write(string.format("not302 %d\n", total))
end
