-- csgi-bench: wrk's summary as one line of JSON, so that nothing is scraped
-- from wrk's text output. Loaded by `wrk -s`; csgi-bench appends status.lua
-- to it for --strict-status runs.
--
-- The line starts with "CSGI_BENCH_JSON " and holds wrk's counters as they
-- are: durations and latencies in microseconds, errors.status = responses
-- with a status above 399 (counted by wrk's C code on every response).

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

local function num(x)
    if x == nil or x ~= x or x == math.huge or x == -math.huge then
        return "null"
    end
    if math.floor(x) == x and math.abs(x) < 2^53 then
        return string.format("%d", x)
    end
    return string.format("%.3f", x)
end

function done(summary, latency, requests)
    local e = summary.errors
    local parts = {}
    local function add(k, v) parts[#parts + 1] = string.format('"%s":%s', k, v) end

    add("duration_us", num(summary.duration))
    add("requests", num(summary.requests))
    add("bytes", num(summary.bytes))
    add("errors", string.format(
        '{"connect":%s,"read":%s,"write":%s,"status":%s,"timeout":%s}',
        num(e.connect), num(e.read), num(e.write), num(e.status), num(e.timeout)))
    local lat = {}
    lat[#lat + 1] = '"min":' .. num(latency.min)
    lat[#lat + 1] = '"max":' .. num(latency.max)
    lat[#lat + 1] = '"mean":' .. num(latency.mean)
    lat[#lat + 1] = '"stdev":' .. num(latency.stdev)
    for _, p in ipairs({50, 75, 90, 99, 99.9}) do
        lat[#lat + 1] = string.format('"p%s":%s', tostring(p), num(latency:percentile(p)))
    end
    add("latency_us", "{" .. table.concat(lat, ",") .. "}")
    if response ~= nil then
        -- status.lua is loaded: every response's status was checked in Lua.
        local non2xx, seen = 0, 0
        for _, t in ipairs(threads) do
            non2xx = non2xx + (t:get("csgi_non2xx") or 0)
            seen = seen + (t:get("csgi_seen") or 0)
        end
        add("non2xx", num(non2xx))
        add("checked", num(seen))
    end
    io.write("CSGI_BENCH_JSON {" .. table.concat(parts, ",") .. "}\n")
end
