#!/bin/sh
# The "program" help2man reads to make ringcask-http(7): the synopsis below
# and, in ringcask-http.h2m, the page's sections (see docs/man/CMakeLists.txt).
case "$1" in
--version) echo "ringcask-http (ringcask) ${RINGCASK_VERSION:-0}" ;;
*) cat <<'END'
Usage: METHOD http://HOST:PORT/[BUCKET[/KEY]] [-H 'Authorization: Bearer CREDENTIAL']

kvd serves buckets of keys over HTTP/1.1. A bucket is created with POST /
and answers with its admin key; keys are any bytes, percent-encoded in the
path; values are the raw request and response bodies. Errors are JSON
objects {"error": CODE, "message": TEXT}. The full reference, with every
status of every route, is docs/HTTP.md in the source tree.
END
;;
esac
