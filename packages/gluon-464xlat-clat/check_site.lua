-- gluon-464xlat-clat: the domain keys of the address plan (DESIGN.md section 2).
-- Self-contained on purpose: Gluon runs it before this package's files
-- (and its gluon.xlat library) are installed.

-- prefix48 returns the first three 16-bit groups of an IPv6 /48 written as
-- text, or nil when it is not one or has bits set beyond the 48th.
local function prefix48(v)
	local addr = type(v) == 'string' and v:match('^([%x:]+)/48$')
	if not addr then
		return nil
	end
	local head, tail = addr:match('^(.-)::(.*)$')
	if not head then
		head, tail = addr, nil
	end
	local groups = {}
	local function take(part)
		if part == '' then
			return true
		end
		for g in (part .. ':'):gmatch('(.-):') do
			if not g:match('^%x%x?%x?%x?$') then
				return false
			end
			groups[#groups + 1] = tonumber(g, 16)
		end
		return true
	end
	if not take(head) then
		return nil
	end
	local nhead = #groups
	if tail and (tail:find('::', 1, true) or not take(tail)) then
		return nil
	end
	if (tail and #groups > 7) or (not tail and #groups ~= 8) then
		return nil
	end
	local ntail = #groups - nhead
	local full = {}
	for i = 1, nhead do full[#full + 1] = groups[i] end
	for _ = 1, 8 - #groups do full[#full + 1] = 0 end
	for i = nhead + 1, nhead + ntail do full[#full + 1] = groups[i] end
	for i = 4, 8 do
		if full[i] ~= 0 then
			return nil
		end
	end
	return full[1] * 2^32 + full[2] * 2^16 + full[3]
end

local range_msg = 'be an IPv6 /48 with no bits set after the 48th, e.g. fddd:1337:1337::/48'
local clat = need(in_domain({'clat_range'}), function(v) return prefix48(v) ~= nil end, true, range_msg)
need(in_domain({'plat_range'}), function(v) return prefix48(v) ~= nil end, true, range_msg)
need(in_domain({'plat_range'}), function(v) return prefix48(v) ~= prefix48(clat) end, true,
	'be a different /48 from clat_range')

-- l3roamd signs its 464xlat messages with this key. It is in every image,
-- so it is no secret: who may move a client's sessions is decided by the
-- node that holds them (docs/l3roamd-security.md).
need(in_domain({'xlat_roam_key'}), function(v) return type(v) == 'string' and #v >= 16 end, true,
	'be a string of at least 16 characters (the domain\'s roaming key)')

-- The clients' IPv4 network and the gateway address every node answers on.
need_string_match(in_domain({'prefix4'}), '^%d+%.%d+%.%d+%.%d+/%d+$')
need_string_match(in_domain({'next_node', 'ip4'}), '^%d+%.%d+%.%d+%.%d+$')
