-- The owner's choice is platd.plat.enabled, the option an admin sets by
-- hand; gluon-reconfigure (which leaving Config Mode runs) keeps it and
-- derives the rest from the site, and the node comes up as an exit.
local uci = require('simple-uci').cursor()

local f = Form(translate('IPv4 exit'))

local s = f:section(Section, nil, translate(
	'The clients of this mesh reach the IPv4 internet through exits: nodes '
	.. 'whose owners share their uplink for it (NAT64). If you enable this, '
	.. 'IPv4 traffic of clients anywhere in the mesh may leave through the uplink '
	.. 'of this node, under its public IPv4 address. Only enable it if your '
	.. 'internet connection and its contract allow this.'
))

local o = s:option(Flag, 'enabled', translate('Offer this node\'s uplink as an IPv4 exit'))
o.default = uci:get_bool('platd', 'plat', 'enabled')

function o:write(data)
	uci:set('platd', 'plat', 'enabled', data)
	uci:commit('platd')
end

return f
