-- A stand-in for the parts of Gluon that run this suite's Lua, so that
-- check_site.lua and the upgrade scripts run for real under lua5.1 in
-- make test, without a Gluon tree:
--
--   lua5.1 gluon-harness.lua check   CHECK_SITE SITE_CONF [DOMAIN_CONF...]
--   lua5.1 gluon-harness.lua upgrade SCRIPT SITE_CONF DOMAIN_CONF MAC UCI_STATE
--
-- check has Gluon's validator semantics (need, need_string_match, in_site,
-- in_domain, ...; site and domain merged, one run per domain, the first
-- error printed as "*** <file> - Error in site.conf: expected <key> to ...",
-- exit 1). upgrade provides gluon.site, gluon.sysconfig and simple-uci; the
-- UCI state lives in UCI_STATE in `uci show` form. It follows the
-- semantics and messages of Gluon's scripts/check_site.lua.

local mode = arg[1]

local function load_conf(file)
	local f = assert(io.open(file))
	local text = f:read('*a')
	f:close()
	return assert(loadstring('return ' .. text, '=' .. file))()
end

local function merge(a, b)
	if type(a) ~= 'table' or type(b) ~= 'table' then
		if b == nil then return a end
		return b
	end
	local m = {}
	for k, v in pairs(a) do m[k] = v end
	for k, v in pairs(b) do m[k] = merge(m[k], v) end
	return m
end

local function lookup(base, path)
	for _, k in ipairs(path) do
		if type(base) ~= 'table' then
			return nil
		end
		base = base[k]
	end
	return base
end

if mode == 'check' then
	local site = load_conf(arg[3])
	local domains = {}
	for i = 4, #arg do
		domains[#domains + 1] = {name = arg[i]:match('([^/]+)%.conf$'), conf = load_conf(arg[i])}
	end
	local conf, domain
	local function src(path)
		if domain and lookup(domain.conf, path) ~= nil then
			return 'domains/' .. domain.name .. '.conf'
		end
		return 'site.conf'
	end
	local function fail(file, msg)
		error(file .. ' - Error in site.conf: ' .. msg, 0)
	end
	local function var_error(path, val, msg)
		local found = 'unset'
		if val ~= nil then
			found = (type(val) == 'string' and string.format('%q', val) or tostring(val)) ..
				' (a ' .. type(val) .. ' value)'
		end
		fail(src(path), string.format('expected %s to %s, but it is %s', table.concat(path, '.'), msg, found))
	end
	function in_site(path)
		if domain and lookup(domain.conf, path) ~= nil then
			fail('domains/' .. domain.name .. '.conf', table.concat(path, '.') .. ' is allowed in site configuration only')
		end
		return path
	end
	function in_domain(path)
		if domain and lookup(site, path) ~= nil then
			fail('site.conf', table.concat(path, '.') .. ' is allowed in domain configuration only')
		end
		return path
	end
	function need(path, check, required, msg)
		local val = lookup(conf, path)
		if required == false and val == nil then
			return nil
		end
		if not check(val) then
			var_error(path, val, msg)
		end
		return val
	end
	function need_string(path, required)
		return need(path, function(v) return type(v) == 'string' end, required, 'be a string')
	end
	function need_number(path, required)
		return need(path, function(v) return type(v) == 'number' end, required, 'be a number')
	end
	function need_boolean(path, required)
		return need(path, function(v) return type(v) == 'boolean' end, required, 'be a boolean')
	end
	function need_string_match(path, pat, required)
		local val = need_string(path, required)
		if val and not val:match(pat) then
			var_error(path, val, "match pattern '" .. pat .. "'")
		end
		return val
	end
	function need_one_of(path, list, required)
		return need(path, function(v)
			for _, x in ipairs(list) do
				if x == v then return true end
			end
			return false
		end, required, 'be one of the given array')
	end
	local check = assert(loadfile(arg[2]))
	local ok, err = pcall(function()
		if #domains == 0 then
			conf = site
			check()
		end
		for _, d in ipairs(domains) do
			domain, conf = d, merge(site, d.conf)
			check()
		end
	end)
	if not ok then
		io.stderr:write('*** ', err, '\n')
		os.exit(1)
	end
	os.exit(0)
end

if mode ~= 'upgrade' then
	io.stderr:write('usage: gluon-harness.lua check|upgrade ...\n')
	os.exit(2)
end

local script, conf, mac, state_file = arg[2], merge(load_conf(arg[3]), load_conf(arg[4])), arg[5], arg[6]

-- gluon.site: site.key.sub() is the value or nil, site.key.sub(default)
-- the value or default.
local function site_proxy(path)
	return setmetatable({}, {
		__index = function(_, k)
			local p = {unpack(path)}
			p[#p + 1] = k
			return site_proxy(p)
		end,
		__call = function(_, default)
			local v = lookup(conf, path)
			if v == nil then return default end
			return v
		end,
	})
end
package.preload['gluon.site'] = function() return site_proxy({}) end
package.preload['gluon.sysconfig'] = function() return {primary_mac = mac} end
-- gluon.l3: the site's node_client_prefix6, or a fixed /64 where Gluon
-- derives one from domain_seed (the real derivation runs on the lab's
-- Gluon nodes, e2e/gluon_test.go).
package.preload['gluon.l3'] = function()
	return {node_client_prefix6 = function()
		return lookup(conf, {'node_client_prefix6'}) or 'fd1c:8b9e:1882:4eef::/64'
	end}
end

-- simple-uci over a `uci show` file: config.section=type and
-- config.section.option='value' (lists: 'a' 'b').
local uci = {}
local order = {}
local function read_state()
	local f = io.open(state_file)
	if not f then return end
	for line in f:lines() do
		local c, s, t = line:match("^([%w_%-]+)%.([%w_%-]+)=([%w_%-]+)$")
		if c then
			uci[c] = uci[c] or {}
			uci[c][s] = {['.type'] = t, ['.name'] = s}
			order[#order + 1] = c .. '.' .. s
		else
			local c2, s2, o, v = line:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)=(.*)$")
			local vals = {}
			for x in v:gmatch("'([^']*)'") do vals[#vals + 1] = x end
			uci[c2][s2][o] = #vals == 1 and vals[1] or vals
		end
	end
	f:close()
end
read_state()

local function tostr(v)
	if v == true then return '1' end
	if v == false then return '0' end
	if type(v) == 'table' then
		local l = {}
		for i, x in ipairs(v) do l[i] = tostr(x) end
		return l
	end
	return tostring(v)
end

local cursor = {}
function cursor:get(c, s, o)
	local sec = uci[c] and uci[c][s]
	if not sec then return nil end
	if o == nil then return sec['.type'] end
	return sec[o]
end
function cursor:get_list(c, s, o)
	local v = self:get(c, s, o)
	if v == nil then return {} end
	if type(v) == 'table' then return {unpack(v)} end
	return {v}
end
function cursor:get_all(c, s)
	return uci[c] and uci[c][s]
end
function cursor:set(c, s, o, v)
	uci[c] = uci[c] or {}
	if v == nil then -- set(config, section, type)
		if not uci[c][s] then
			uci[c][s] = {['.type'] = o, ['.name'] = s}
			order[#order + 1] = c .. '.' .. s
		end
		return true
	end
	assert(uci[c][s], 'uci set on a missing section ' .. c .. '.' .. s)
	uci[c][s][o] = tostr(v)
	return true
end
cursor.set_list = cursor.set
function cursor:section(c, t, s, opts)
	self:set(c, s, t)
	for o, v in pairs(opts or {}) do self:set(c, s, o, v) end
	return s
end
function cursor:delete(c, s, o)
	if not (uci[c] and uci[c][s]) then return false end
	if o then uci[c][s][o] = nil else uci[c][s] = nil end
	return true
end
function cursor:foreach(c, t, fn)
	for _, key in ipairs(order) do
		local cc, ss = key:match('^(.-)%.(.*)$')
		local sec = uci[cc] and uci[cc][ss]
		if cc == c and sec and (t == nil or sec['.type'] == t) then
			fn(sec)
		end
	end
end
function cursor:save() return true end
function cursor:commit() return true end
package.preload['simple-uci'] = function() return {cursor = function() return cursor end} end

local ok, err = pcall(dofile, script)
-- State is written sorted (sections, then each one's options), so two runs
-- compare byte for byte.
local keys = {}
for c, secs in pairs(uci) do
	for s in pairs(secs) do keys[#keys + 1] = c .. '.' .. s end
end
table.sort(keys)
local lines = {}
for _, key in ipairs(keys) do
	local c, s = key:match('^(.-)%.(.*)$')
	local sec = uci[c][s]
	lines[#lines + 1] = key .. '=' .. sec['.type']
	local opts = {}
	for o, v in pairs(sec) do
		if o:sub(1, 1) ~= '.' then
			if type(v) == 'table' then
				local q = {}
				for i, x in ipairs(v) do q[i] = "'" .. x .. "'" end
				opts[#opts + 1] = key .. '.' .. o .. '=' .. table.concat(q, ' ')
			else
				opts[#opts + 1] = key .. '.' .. o .. "='" .. v .. "'"
			end
		end
	end
	table.sort(opts)
	for _, l in ipairs(opts) do lines[#lines + 1] = l end
end
local f = assert(io.open(state_file, 'w'))
f:write(table.concat(lines, '\n'), '\n')
f:close()
if not ok then
	io.stderr:write(tostring(err), '\n')
	os.exit(1)
end
