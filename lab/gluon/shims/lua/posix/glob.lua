-- lab shim (lab/gluon/README.md): OpenWrt's luaposix 35 takes
-- glob(pattern, flags) and Gluon passes flags 0 (gluon.util.glob,
-- gluon-web's dispatcher); Debian's lua-posix 33.4 takes glob(pattern)
-- only and refuses a second argument. Flags 0 is the one-argument call.
local c = assert(package.loadlib('/usr/lib/x86_64-linux-gnu/lua/5.1/posix.so', 'luaopen_posix_glob'))()

local M = {}
for k, v in pairs(c) do
	M[k] = v
end

function M.glob(pattern, flags)
	assert(flags == nil or flags == 0, 'lab shim: posix.glob flags other than 0')
	return c.glob(pattern)
end

return M
