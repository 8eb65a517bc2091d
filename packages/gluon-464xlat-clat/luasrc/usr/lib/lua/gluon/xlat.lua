-- gluon.xlat: the address plan of gluon-464xlat (DESIGN.md section 2),
-- shared by check_site.lua and the upgrade scripts: a node's /96 is the
-- site's /48 range followed by the node's 48-bit primary MAC.
local M = {}

-- groups parses an IPv6 address into its eight 16-bit groups (numbers),
-- or returns nil. Embedded IPv4 notation is not accepted: ranges are plain.
function M.groups(addr)
	if type(addr) ~= 'string' or not addr:match('^[%x:]+$') then
		return nil
	end
	local head, tail = addr, nil
	local s, e = addr:find('::', 1, true)
	if s then
		head, tail = addr:sub(1, s - 1), addr:sub(e + 1)
		if tail:find('::', 1, true) then
			return nil
		end
	end
	local function split(str)
		local out = {}
		if str == '' then
			return out
		end
		for g in (str .. ':'):gmatch('([^:]*):') do
			if not g:match('^%x%x?%x?%x?$') then
				return nil
			end
			out[#out + 1] = tonumber(g, 16)
		end
		return out
	end
	local h, t = split(head), split(tail or '')
	if not h or not t then
		return nil
	end
	if tail == nil then
		if #h ~= 8 then
			return nil
		end
		return h
	end
	if #h + #t > 7 then
		return nil
	end
	local g = {}
	for _, v in ipairs(h) do g[#g + 1] = v end
	for _ = 1, 8 - #h - #t do g[#g + 1] = 0 end
	for _, v in ipairs(t) do g[#g + 1] = v end
	return g
end

-- format writes eight groups in the canonical text form of RFC 5952
-- (section 4: lower case, no leading zeros, the longest run of two or more
-- zero groups, the first of equals, as '::').
function M.format(g)
	local best, bestlen, i = nil, 1, 1
	while i <= 8 do
		if g[i] == 0 then
			local j = i
			while j <= 8 and g[j] == 0 do j = j + 1 end
			if j - i > bestlen then
				best, bestlen = i, j - i
			end
			i = j
		else
			i = i + 1
		end
	end
	local parts = {}
	for k = 1, 8 do parts[k] = string.format('%x', g[k]) end
	if not best then
		return table.concat(parts, ':')
	end
	local left = table.concat(parts, ':', 1, best - 1)
	local right = table.concat(parts, ':', best + bestlen, 8)
	return left .. '::' .. right
end

-- range48 returns the three leading groups of a '/48' range, or nil when
-- the text is not an IPv6 /48 with its host bits clear.
function M.range48(range)
	if type(range) ~= 'string' then
		return nil
	end
	local addr = range:match('^([%x:]+)/48$')
	local g = addr and M.groups(addr)
	if not g then
		return nil
	end
	for k = 4, 8 do
		if g[k] ~= 0 then
			return nil
		end
	end
	return {g[1], g[2], g[3]}
end

-- node_groups is range /48 + MAC: the first six groups of the node's /96.
local function node_groups(range, mac)
	local r = M.range48(range)
	local b = {}
	for x in (mac or ''):gmatch('%x%x') do b[#b + 1] = tonumber(x, 16) end
	if not r or #b ~= 6 or not mac:match('^%x%x:%x%x:%x%x:%x%x:%x%x:%x%x$') then
		return nil
	end
	return {r[1], r[2], r[3], b[1] * 256 + b[2], b[3] * 256 + b[4], b[5] * 256 + b[6], 0, 0}
end

-- node_prefix is the node's /96 in range, e.g.
-- ('fddd:1337:1337::/48', '12:34:56:78:9a:bc') -> 'fddd:1337:1337:1234:5678:9abc::/96'.
function M.node_prefix(range, mac)
	local g = node_groups(range, mac)
	return g and (M.format(g) .. '/96')
end

-- node_addr is the address PREFIX::192.0.0.n of the node's /96 (n = 1: a
-- PLAT's management address, n = 2: a CLAT's own address).
function M.node_addr(range, mac, n)
	local g = node_groups(range, mac)
	if not g then
		return nil
	end
	g[7], g[8] = 0xc000, n
	return M.format(g)
end

-- same48 reports whether two /48 ranges are the same network.
function M.same48(a, b)
	local x, y = M.range48(a), M.range48(b)
	return x and y and x[1] == y[1] and x[2] == y[2] and x[3] == y[3] or false
end

return M
