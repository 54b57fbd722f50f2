-- wrk script for the pixel benchmark: every request carries a different
-- User-Agent, so for pixelrelay every request is a new (non-duplicate) open.
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
-- WRK_PREFIX tells several wrk processes' agents apart (bench_postgres).
local prefix = os.getenv("WRK_PREFIX") or ""

function request()
  n = n + 1
  return wrk.format("GET", nil, {
    ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 " ..
      "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 bench/" .. prefix .. tostring(tid) .. "." .. n,
  })
end
