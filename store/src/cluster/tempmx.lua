#!lua name=tempmx
-- Server-side steps of fleet mode (loaded with FUNCTION LOAD, replicated with the data).
-- Every function touches the keys of one mailbox only, which share one hash slot, so each
-- call is atomic on that mailbox. Keys and values are described in cluster/mod.rs.

-- The index entry of a record: 16 hex digits of the id, ':', expiry in ms.
local function entry_id(e)
  return string.sub(e, 1, 16)
end

-- KEYS: registry, index, record. ARGV: frame, id (16 hex), now ms, default TTL ms,
-- default cap, record key prefix, listing summary (optional). Stores the record once under the mailbox's TTL,
-- pushes it on the index (newest first), trims the index to the cap (deleting the
-- records that fall off), and extends the index's expiry. Returns the expiry in ms.
local function put(keys, args)
  local reg, idx, rec = keys[1], keys[2], keys[3]
  local ttl = tonumber(args[4])
  local cap = tonumber(args[5])
  local o = redis.call('HMGET', reg, 'ttl', 'cap')
  if o[1] and tonumber(o[1]) > 0 then ttl = tonumber(o[1]) * 1000 end
  if o[2] and tonumber(o[2]) > 0 then cap = tonumber(o[2]) end
  local exp = string.format('%d', tonumber(args[3]) + ttl)
  if not redis.call('SET', rec, args[1], 'NX', 'PXAT', exp) then
    return redis.error_reply('TAKEN message id already stored in this mailbox')
  end
  local entry = args[2] .. ':' .. exp
  if args[7] and args[7] ~= '' then entry = entry .. ':' .. args[7] end
  local n = redis.call('LPUSH', idx, entry)
  if n > cap then
    for _, e in ipairs(redis.call('LRANGE', idx, cap, -1)) do
      redis.call('DEL', args[6] .. entry_id(e))
    end
    redis.call('LTRIM', idx, 0, cap - 1)
  end
  local left = redis.call('PTTL', idx)
  if left < 0 or left < ttl then
    redis.call('PEXPIREAT', idx, exp)
  end
  return tonumber(exp)
end

-- KEYS: registry, index. ARGV: token hash, expiry ms, TTL override s (0 none), cap (0
-- none), record key prefix. Registers the mailbox unless it exists, dropping mail the
-- address got before (catch-all mode stores it) so a new owner never reads an earlier
-- one's. Returns 1 when created, 0 when taken.
local function create(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then
    return 0
  end
  for _, e in ipairs(redis.call('LRANGE', keys[2], 0, -1)) do
    redis.call('DEL', args[5] .. entry_id(e))
  end
  redis.call('DEL', keys[2])
  redis.call('HSET', keys[1], 'th', args[1], 'exp', args[2], 'ttl', args[3], 'cap', args[4])
  redis.call('PEXPIREAT', keys[1], args[2])
  return 1
end

-- KEYS: registry. ARGV: wanted expiry ms, now ms. Moves a live mailbox's expiry to the
-- wanted one (never earlier) and its message TTL to the time left. Returns the expiry in
-- force, or 0 when the mailbox is not registered.
local function extend(keys, args)
  local old = tonumber(redis.call('HGET', keys[1], 'exp'))
  if not old then
    return 0
  end
  local exp = math.max(old, tonumber(args[1]))
  local ttl = math.ceil((exp - tonumber(args[2])) / 1000)
  redis.call('HSET', keys[1], 'exp', string.format('%d', exp), 'ttl', string.format('%d', ttl))
  redis.call('PEXPIREAT', keys[1], string.format('%d', exp))
  return exp
end

-- KEYS: registry, index. ARGV: record key prefix. Drops the mailbox with its records.
-- Returns the number of records it listed.
local function drop(keys, args)
  local entries = redis.call('LRANGE', keys[2], 0, -1)
  for _, e in ipairs(entries) do
    redis.call('DEL', args[1] .. entry_id(e))
  end
  redis.call('DEL', keys[1], keys[2])
  return #entries
end

-- KEYS: index, record. ARGV: id (16 hex). Unlinks and deletes one record. Returns 1 when
-- it was there.
local function remove(keys, args)
  for _, e in ipairs(redis.call('LRANGE', keys[1], 0, -1)) do
    if entry_id(e) == args[1] then
      redis.call('LREM', keys[1], 1, e)
    end
  end
  return redis.call('DEL', keys[2])
end

redis.register_function('tempmx_put', put)
redis.register_function('tempmx_create', create)
redis.register_function('tempmx_extend', extend)
redis.register_function('tempmx_drop', drop)
redis.register_function('tempmx_remove', remove)
