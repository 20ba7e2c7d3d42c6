#!/bin/bash
# The rig's hands inside the guest: runs the shell commands the host sends on
# the second serial port (ttyS1) and answers each with its exit status and
# output. One line each way, "ID BASE64-COMMAND" in and "RESULT ID STATUS
# BASE64-OUTPUT" out: base64 so that no byte of a command or of its output
# can be taken for the framing, the id so that the answer to a command the
# host gave up on is never taken for the next one's. Installed in the image by
# scripts/vm-test.sh; it is not part of the package.
set -u
port=/dev/ttyS1
stty -F "$port" raw -echo -ixon -ixoff 115200
exec <"$port" >"$port"
echo "AGENT READY"
while IFS= read -r line; do
    line=${line%$'\r'}
    id=${line%% *}
    [ -n "$id" ] && [ "$id" != "$line" ] || continue
    cmd=$(printf '%s' "${line#* }" | base64 -d 2>/dev/null) || {
        echo "RESULT $id 255 $(printf 'bad base64' | base64 -w0)"
        continue
    }
    out=$(timeout 300 bash -c "$cmd" </dev/null 2>&1)
    rc=$?
    echo "RESULT $id $rc $(printf '%s' "$out" | base64 -w0)"
done
