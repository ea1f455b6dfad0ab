-- wrk script: GET /v1/users/<user>/recommendations?k=K&exclude_seen=true for random known users,
-- counting every non-200 answer by status.
--
--   wrk -t2 -c32 -d30s -s benchmarks/serving/recommend.lua http://127.0.0.1:8080
--
-- Users, from the environment:
--   FRESHET_USERS_FILE  a file with one user id per line (ids are percent-encoded), or
--   FRESHET_USER_MIN .. FRESHET_USER_MAX  integer ids (default 1 .. 943, MovieLens 100K's users);
--   FRESHET_USER_PREFIX prepended to integer ids (default none, e.g. "u" for "u17").
-- FRESHET_K: k (default 20).
-- At the end it prints one JSON line:
--   {"requests":N,"non_200":M,"statuses":{"503":x,...},"socket_errors":E,"rps":R,
--    "latency_ms":{"p50":..,"p90":..,"p99":..,"max":..}}

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function load_users()
  local users = {}
  local file = env("FRESHET_USERS_FILE", nil)
  if file ~= nil then
    for line in io.lines(file) do
      line = string.gsub(line, "^%s*(.-)%s*$", "%1")
      if line ~= "" then users[#users + 1] = urlencode(line) end
    end
  else
    local lo = tonumber(env("FRESHET_USER_MIN", "1"))
    local hi = tonumber(env("FRESHET_USER_MAX", "943"))
    local prefix = env("FRESHET_USER_PREFIX", "")
    for u = lo, hi do users[#users + 1] = urlencode(prefix .. tostring(u)) end
  end
  if #users == 0 then error("recommend.lua: no users (check FRESHET_USERS_FILE / FRESHET_USER_*)") end
  return users
end

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  threads[#threads + 1] = thread
end

local users
local k
-- Globals, so done() can read them from each thread with thread:get().
statuses = {}
non_200 = 0

function init(args)
  users = load_users()
  k = env("FRESHET_K", "20")
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  local user = users[math.random(#users)]
  return wrk.format("GET", "/v1/users/" .. user .. "/recommendations?k=" .. k .. "&exclude_seen=true")
end

function response(status, headers, body)
  if status ~= 200 then
    non_200 = non_200 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_non_200 = 0
  local merged = {}
  for _, thread in ipairs(threads) do
    total_non_200 = total_non_200 + (thread:get("non_200") or 0)
    local s = thread:get("statuses")
    if s ~= nil then
      for code, n in pairs(s) do merged[code] = (merged[code] or 0) + n end
    end
  end
  local status_json = {}
  for code, n in pairs(merged) do status_json[#status_json + 1] = string.format('"%s":%d', code, n) end
  local errors = summary.errors
  local socket_errors = errors.connect + errors.read + errors.write + errors.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"non_200":%d,"statuses":{%s},"socket_errors":%d,"rps":%.0f,' ..
    '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f}}\n',
    summary.requests, total_non_200, table.concat(status_json, ","), socket_errors,
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
