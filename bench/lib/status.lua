-- csgi-bench --strict-status: check every response's status in Lua (anything
-- but 2xx is an error). Appended to report.lua. It costs wrk time per
-- response, so it is off by default; wrk's own counter (status > 399) runs
-- on every response in any case.

csgi_non2xx = 0
csgi_seen = 0

function response(status, headers, body)
    csgi_seen = csgi_seen + 1
    if status < 200 or status > 299 then
        csgi_non2xx = csgi_non2xx + 1
    end
end
