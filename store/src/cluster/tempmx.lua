-- Loaded by functions.rs, which prepends the `#!lua name=` line and `local V`, the
-- build's version suffix of every name registered here.
-- Server-side steps of fleet mode (loaded with FUNCTION LOAD, replicated with the data).
-- Every function touches the keys of one slot only (one mailbox's, or the fleet's `{fleet}`
-- keys), so each call is atomic. Keys and values are described in cluster/mod.rs.

-- The index entry of a record: 16 hex digits of the id, ':', expiry in ms.
local function entry_id(e)
  return string.sub(e, 1, 16)
end

-- KEYS: registry, index, record, webhooks (optional). ARGV: frame, id (16 hex), now ms,
-- default TTL ms, default cap, record key prefix, listing summary ('' for none), the
-- mailbox's shard channel, the largest frame an announcement carries. Stores the record
-- once under the mailbox's TTL, pushes it on the index (newest first), trims the index
-- to the cap (deleting the records that fall off), extends the index's expiry, and
-- announces the record on the channel: `<id> <expiry ms>`, then ` <frame>` when the
-- frame is small enough and the channel has subscribers here, so a subscriber needs no
-- read. Returns {expiry in ms, 1 if the webhooks hash exists else 0}, so the writer
-- looks hooks up only where there are any.
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
  -- The frame is copied into the announcement only when this primary has subscribers to
  -- carry it to: most mailboxes have none, and their writes then cost no copy.
  local note = args[2] .. ' ' .. exp
  if #args[1] <= tonumber(args[9])
      and redis.call('PUBSUB', 'SHARDNUMSUB', args[8])[2] > 0 then
    note = note .. ' ' .. args[1]
  end
  redis.call('SPUBLISH', args[8], note)
  local hooked = 0
  if keys[4] then hooked = redis.call('EXISTS', keys[4]) end
  return {tonumber(exp), hooked}
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
-- wanted one (never earlier) and its message TTL to the time left. Returns {expiry before,
-- expiry in force}, or {0, 0} when the mailbox is not registered.
local function extend(keys, args)
  local old = tonumber(redis.call('HGET', keys[1], 'exp'))
  if not old then
    return {0, 0}
  end
  local exp = math.max(old, tonumber(args[1]))
  local ttl = math.ceil((exp - tonumber(args[2])) / 1000)
  redis.call('HSET', keys[1], 'exp', string.format('%d', exp), 'ttl', string.format('%d', ttl))
  redis.call('PEXPIREAT', keys[1], string.format('%d', exp))
  return {old, exp}
end

-- KEYS: registry, index. ARGV: record key prefix. Drops the mailbox with its records.
-- Returns {records it listed, its expiry (0 when it was not registered)}, so the caller
-- uncounts exactly the registration this call removed.
local function drop(keys, args)
  local entries = redis.call('LRANGE', keys[2], 0, -1)
  for _, e in ipairs(entries) do
    redis.call('DEL', args[1] .. entry_id(e))
  end
  local exp = tonumber(redis.call('HGET', keys[1], 'exp')) or 0
  redis.call('DEL', keys[1], keys[2])
  return {#entries, exp}
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

-- KEYS: shared part (`tmx:{p:<key>}`). ARGV: value, expiry ms. Stores a part once by
-- content (SET NX PXAT); when it is there already, checks it holds the same bytes (a
-- content key collision is refused, never served) and moves its expiry later only
-- (PEXPIREAT GT). Returns 1 when stored, 0 when it was there. A part of other bytes
-- whose header matches apart from the encoding (magic, length, CRC32C of the data, key;
-- the encoding, plain version 1 or LZ4 version 2, in bytes 13-14, may differ) returns 2:
-- stored in the other encoding, or compressed to other bytes; the caller reads it back
-- and compares the data itself, as Lua has no LZ4.
local function part(keys, args)
  if redis.call('SET', keys[1], args[1], 'NX', 'PXAT', args[2]) then
    return 1
  end
  local have, new = redis.call('GET', keys[1]), args[1]
  local verdict = 0
  if have ~= new then
    local encodings = {['\1\0'] = true, ['\2\0'] = true}
    local other = encodings[string.sub(have, 13, 14)] and encodings[string.sub(new, 13, 14)]
      and string.sub(have, 1, 12) == string.sub(new, 1, 12)
      and string.sub(have, 15, 24) == string.sub(new, 15, 24)
    if not other then
      return redis.error_reply('COLLISION another part holds this content key')
    end
    verdict = 2
  end
  redis.call('PEXPIREAT', keys[1], args[2], 'GT')
  return verdict
end

-- The lease value: '<node> <epoch>'. Returns node, epoch (nil, nil when malformed).
local function lease_parts(v)
  local node, epoch = string.match(v, '^(.*) (%d+)$')
  return node, tonumber(epoch)
end

-- KEYS: lease, epoch counter. ARGV: node, lease length ms. Renews the lease when `node`
-- holds it; takes it (bumping the epoch) when nobody does. Returns {1 if `node` holds it
-- now else 0, the holder's epoch, the holder's name}.
local function lease(keys, args)
  local cur = redis.call('GET', keys[1])
  if cur then
    local node, epoch = lease_parts(cur)
    if node == args[1] then
      redis.call('PEXPIRE', keys[1], args[2])
      return {1, epoch, node}
    end
    return {0, epoch or 0, node or cur}
  end
  local epoch = redis.call('INCR', keys[2])
  redis.call('SET', keys[1], args[1] .. ' ' .. epoch, 'PX', args[2])
  return {1, epoch, args[1]}
end

-- KEYS: lease. ARGV: node, epoch. Gives the lease up if `node` still holds it at `epoch`.
-- Returns 1 when it did.
local function lease_release(keys, args)
  local cur = redis.call('GET', keys[1])
  if cur and cur == args[1] .. ' ' .. args[2] then
    redis.call('DEL', keys[1])
    return 1
  end
  return 0
end

-- KEYS: lease, version, states, records, policy, audit, audit id. ARGV: epoch ('-' for an
-- operator's write, never fenced), node, audit cap, now s, number of domains D, then D
-- triples (name, state, record JSON), number of deletions N, N names, policy JSON ('' for
-- none), then audit entries (JSON objects). A write with an epoch is refused (FENCED)
-- unless the lease exists and carries that epoch. Deleted domains keep a `deleted`
-- tombstone in the states hash, so every node drops them. Each audit entry gets the next
-- id and the node's name; the list keeps the newest `cap`. Bumps the version (which starts
-- at the unix time of the first write, so SOA serials made from it only grow). Returns
-- the new version.
local function pool_write(keys, args)
  if args[1] ~= '-' then
    local cur = redis.call('GET', keys[1])
    local epoch = nil
    if cur then
      local _, e = lease_parts(cur)
      epoch = e
    end
    if epoch ~= tonumber(args[1]) then
      return redis.error_reply('FENCED lease epoch ' .. args[1] .. ' is not current')
    end
  end
  local node, cap = args[2], tonumber(args[3])
  local i = 6
  for _ = 1, tonumber(args[5]) do
    redis.call('HSET', keys[3], args[i], args[i + 1])
    redis.call('HSET', keys[4], args[i], args[i + 2])
    i = i + 3
  end
  local n = tonumber(args[i])
  i = i + 1
  for _ = 1, n do
    redis.call('HSET', keys[3], args[i], 'deleted')
    redis.call('HDEL', keys[4], args[i])
    i = i + 1
  end
  if args[i] ~= '' then
    redis.call('SET', keys[5], args[i])
  end
  i = i + 1
  while i <= #args do
    local e = cjson.decode(args[i])
    e['id'] = redis.call('INCR', keys[7])
    e['node'] = node
    redis.call('RPUSH', keys[6], cjson.encode(e))
    i = i + 1
  end
  redis.call('LTRIM', keys[6], -cap, -1)
  redis.call('SET', keys[2], args[4], 'NX')
  return redis.call('INCR', keys[2])
end

redis.register_function('tempmx_put' .. V, put)
redis.register_function('tempmx_create' .. V, create)
redis.register_function('tempmx_extend' .. V, extend)
redis.register_function('tempmx_drop' .. V, drop)
redis.register_function('tempmx_remove' .. V, remove)
redis.register_function('tempmx_part' .. V, part)
redis.register_function('tempmx_lease' .. V, lease)
redis.register_function('tempmx_lease_release' .. V, lease_release)
redis.register_function('tempmx_pool_write' .. V, pool_write)
