-- gluon-464xlat-plat: an exit needs the same address plan as every node;
-- gluon-464xlat-clat (a dependency) checks the ranges in full. The exit
-- adds one optional domain key: the IPv4 prefixes it serves although they
-- are special-purpose (for a lab or a community's own IPv4 network).
need_string_match(in_domain({'plat_range'}), '^[%x:]+/48$')
need(in_domain({'xlat_plat_allow'}), function(v)
	if type(v) ~= 'table' then
		return false
	end
	for _, p in ipairs(v) do
		if type(p) ~= 'string' or not p:match('^%d+%.%d+%.%d+%.%d+/%d+$') then
			return false
		end
	end
	return true
end, false, 'be an array of IPv4 prefixes, e.g. { \'198.51.100.0/24\' }')
-- Config Mode's "IPv4 exit" page for node owners (shown unless false)
need_boolean(in_domain({'config_mode', 'xlat_exit', 'show'}), false)
