-- The status page's 464xlat view (http://[node]/cgi-bin/status/xlat): what
-- this package's respondd provider tells the map, read as Gluon's status
-- page reads respondd, so the page and the map never disagree.
package 'gluon-464xlat-clat'

local json = require 'jsonc'
local util = require 'gluon.util'

local function respondd(what)
	return json.parse(util.exec('exec gluon-neighbour-info -d ::1 -p 1001 -t 3 -c 1 -r ' .. what)) or {}
end

entry({'xlat'}, call(function(http, renderer)
	renderer.render('xlat', {
		nodeinfo = respondd('nodeinfo'),
		statistics = respondd('statistics'),
	}, 'gluon-464xlat-clat')
end))
