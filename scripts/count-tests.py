#!/usr/bin/env python3
"""Turn a meson testlog.json into one line per test case: "ok NAME" / "FAIL NAME".

Check programs print "NN%: Checks: N, Failures: F, Errors: E"; such a program
counts as N cases (F + E failed). Any other test program counts as one case.
A sanitizer report anywhere in a test's output is one more failed case.
"""
import json
import re
import sys

CHECK = re.compile(r"(\d+)%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")
# A sanitizer's report in a test's output fails it, whoever printed it: a
# csgi-server a test started (its workers' LeakSanitizer at exit, say) shares
# the test's stderr, but its exit status is not the test's.
SANITIZER = re.compile(r"ERROR: (LeakSanitizer|AddressSanitizer)|runtime error: ")

def main():
    path, tag = sys.argv[1], sys.argv[2]
    try:
        f = open(path)
    except OSError:
        # No log means the run never happened: that is a failure, not zero tests.
        print(f"FAIL {tag}/no-test-log")
        return
    with f:
        for line in f:
            t = json.loads(line)
            name = f"{tag}/{t['name']}"
            ok = t["result"] in ("OK", "EXPECTEDFAIL", "SKIP")
            m = CHECK.findall(t.get("stdout", "") or "")
            if m:
                checks = sum(int(x[1]) for x in m)
                bad = sum(int(x[2]) + int(x[3]) for x in m)
                for i in range(checks - bad):
                    print(f"ok {name}#{i}")
                for i in range(bad):
                    print(f"FAIL {name}#check{i}")
                if not ok and bad == 0:
                    print(f"FAIL {name} (exit: {t['result']})")
            else:
                print(f"{'ok' if ok else 'FAIL'} {name}")
            if SANITIZER.search(t.get("stdout", "") or ""):
                print(f"FAIL {name} (a sanitizer report in its output)")

if __name__ == "__main__":
    main()
