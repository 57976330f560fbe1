-- wrk script for bench/authorize: POST /v1/authorize for a random account
-- among BENCH_ACCOUNTS (external refs b1..bN), amount 0.01, ingest token.
local accounts = tonumber(os.getenv("BENCH_ACCOUNTS") or "10000")
local token = os.getenv("BENCH_TOKEN") or ""
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
end

function init(args)
   math.randomseed(1000003 * (seed or 1))
   wrk.method = "POST"
   wrk.headers["Authorization"] = "Bearer " .. token
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local body = string.format('{"account":"ext:b%d","amount":"0.01"}', math.random(1, accounts))
   return wrk.format(nil, "/v1/authorize", nil, body)
end
