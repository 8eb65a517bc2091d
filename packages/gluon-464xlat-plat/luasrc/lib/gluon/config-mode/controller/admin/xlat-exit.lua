-- Config Mode, Advanced settings: a node owner offers the node's uplink as
-- an IPv4 exit of the mesh (platd). A community that wants no owner-run
-- exits hides the page: config_mode.xlat_exit.show = false in site.conf
-- or a domain.
package 'gluon-464xlat-plat'

local site = require 'gluon.site'

if site.config_mode.xlat_exit.show(true) then
	entry({'admin', 'xlat-exit'}, model('admin/xlat-exit'), _('IPv4 exit'), 55)
end
