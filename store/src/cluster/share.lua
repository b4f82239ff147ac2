-- Loaded by functions.rs, which prepends the `#!lua name=` line and `local V`, the
-- build's version suffix of every name registered here.
-- Fleet-wide greylisting and public-API rate limits (issue 15 parts 5 and 6), loaded with
-- FUNCTION LOAD beside the `tempmx` library and replicated with the data. Each call
-- touches keys of one hash slot only; keys and values are described in greylist.rs and
-- ratelimit.rs.

-- KEYS: triplet, client network (one slot: the network's fingerprint is the hash tag).
-- ARGV: now ms, delay ms, retry window ms, pass lifetime ms, auto-allow passes (0 = off).
-- One step of the greylisting state machine, atomically:
--   a client network with enough passes skips (its memory refreshed);
--   a passed triplet is known (its memory refreshed);
--   a waiting triplet whose delay is over passes (and counts a pass for its network);
--   anything else starts waiting with SET NX PX (expiry = the retry window).
-- Returns {verdict, ms}: 0 defer (ms until a retry can pass), 1 retried (ms waited),
-- 2 known, 3 auto-allowlisted.
local function grey(keys, args)
  local t, c = keys[1], keys[2]
  local now = tonumber(args[1])
  local delay = tonumber(args[2])
  local window = tonumber(args[3])
  local life = tonumber(args[4])
  local need = tonumber(args[5])
  if need > 0 then
    local passes = tonumber(redis.call('GET', c) or '0') or 0
    if passes >= need then
      redis.call('PEXPIRE', c, life)
      return {3, 0}
    end
  end
  local v = redis.call('GET', t)
  if v == 'p' then
    redis.call('PEXPIRE', t, life)
    return {2, 0}
  end
  local first = v and tonumber(v)
  if first then
    -- A node whose clock is behind the first one's sees 0, never a negative time.
    local waited = math.max(0, now - first)
    if waited < delay then
      return {0, delay - waited}
    end
    if waited <= window then
      redis.call('SET', t, 'p', 'PX', life)
      if need > 0 then
        -- Only networks below `need` get here, so the count stays at most `need`.
        redis.call('INCR', c)
        redis.call('PEXPIRE', c, life)
      end
      return {1, waited}
    end
    redis.call('DEL', t)
  end
  redis.call('SET', t, args[1], 'NX', 'PX', window)
  return {0, delay}
end

-- KEYS: one client's bucket. ARGV: emission interval ms (may be fractional), burst.
-- GCRA on the slot primary's clock: the key holds the theoretical arrival time (ms) and
-- expires when the bucket is full again. Returns {1, 0} when taken, {0, ms to wait}.
local function rate(keys, args)
  local interval = tonumber(args[1])
  local burst = tonumber(args[2])
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local tat = tonumber(redis.call('GET', keys[1]) or '0') or 0
  if tat < now then
    tat = now
  end
  local next_tat = tat + interval
  local over = next_tat - now - burst * interval
  if over > 0 then
    return {0, math.ceil(over)}
  end
  redis.call('SET', keys[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
  return {1, 0}
end

-- KEYS: a domain's count hash (counts.rs). ARGV: messages to add, newest receipt (unix s),
-- expiry s. Adds the messages, keeps the newest receipt time, refreshes the expiry.
-- Returns the domain's total.
local function count(keys, args)
  local k = keys[1]
  local total = redis.call('HINCRBY', k, 'm', args[1])
  local at = tonumber(redis.call('HGET', k, 'at') or '0') or 0
  if tonumber(args[2]) > at then
    redis.call('HSET', k, 'at', args[2])
  end
  redis.call('EXPIRE', k, args[3])
  return total
end

-- KEYS: a domain's mailbox buckets (counts.rs): expiry minute -> mailboxes expiring then;
-- its sum (same slot): `t`, the buckets' sum, and `lo`, the first minute not yet dropped.
-- ARGV: the minute now, expiry s, then (minute, delta) pairs to add. Drops the buckets
-- whose minute has come (each minute visited once, from `lo` on, so a call costs the
-- minutes since the last one), adds the deltas to buckets still ahead, moves both keys'
-- expiry later (never earlier: they must outlive the latest bucket), and returns the live
-- mailboxes (`t`, never below 0). The buckets are summed afresh when there is no sum yet
-- and once an hour: nodes of a build before the sum change buckets without it, and the
-- sum's own key keeps their hash as they read it (minutes only).
local function mailboxes(keys, args)
  local k, sum = keys[1], keys[2]
  local now = tonumber(args[1])
  if #args <= 2 and redis.call('EXISTS', k) == 0 then
    -- A read of a domain without mailboxes writes nothing (no key without an expiry).
    return 0
  end
  local t = tonumber(redis.call('HGET', sum, 't'))
  local lo = tonumber(redis.call('HGET', sum, 'lo'))
  local t0 = t
  if not t or not lo or math.floor(lo / 60) ~= math.floor((now + 1) / 60) then
    t = 0
    local all, gone = redis.call('HGETALL', k), {}
    for i = 1, #all, 2 do
      local n = tonumber(all[i + 1]) or 0
      if tonumber(all[i]) <= now or n == 0 then
        gone[#gone + 1] = all[i]
      else
        t = t + n
      end
    end
    if #gone > 0 then
      redis.call('HDEL', k, unpack(gone))
    end
  else
    for m = lo, now do
      local field = string.format('%d', m)
      local n = tonumber(redis.call('HGET', k, field))
      if n then
        t = t - n
        redis.call('HDEL', k, field)
      end
    end
  end
  for i = 3, #args - 1, 2 do
    if tonumber(args[i]) > now then
      if redis.call('HINCRBY', k, args[i], args[i + 1]) == 0 then
        redis.call('HDEL', k, args[i])
      end
      t = t + tonumber(args[i + 1])
    end
  end
  if redis.call('EXISTS', k) == 0 then
    -- Every bucket is gone, so is the sum: no key without an expiry stays behind.
    redis.call('DEL', sum)
    return 0
  end
  -- Written only when it moved: most calls are the per-second reads within one minute.
  if t ~= t0 or lo ~= now + 1 then
    redis.call('HSET', sum, 't', string.format('%d', t), 'lo', string.format('%d', now + 1))
  end
  local life = math.max(redis.call('TTL', k), tonumber(args[2]))
  for _, key in ipairs({k, sum}) do
    if life > 0 and redis.call('TTL', key) < life then
      redis.call('EXPIRE', key, life)
    end
  end
  return math.max(t, 0)
end

redis.register_function('tempmx_grey' .. V, grey)
redis.register_function('tempmx_rate' .. V, rate)
redis.register_function('tempmx_count' .. V, count)
redis.register_function('tempmx_mailboxes' .. V, mailboxes)
