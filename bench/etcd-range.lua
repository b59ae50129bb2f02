-- wrk script for bench/get-secret.sh: one etcd v3 JSON-gateway range read per request.
-- ETCD_KEY_B64 is the base64 of the key; it defaults to /registry/secrets/default/bench.
local key = os.getenv("ETCD_KEY_B64") or "L3JlZ2lzdHJ5L3NlY3JldHMvZGVmYXVsdC9iZW5jaA=="

wrk.method = "POST"
wrk.body = '{"key":"' .. key .. '"}'
wrk.headers["Content-Type"] = "application/json"
