# Stand-in for OpenWrt's include/package.mk (see ../README.md): the build
# directory, BuildPackage, and the steps of a package build in OpenWrt's
# order, as one target.
PKG_BUILD_DIR?=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PACKAGES:=
BuildPackage=$(eval PACKAGES+=$(1))

# one package's install recipe into $(WORK)/ipkg/<package>
define InstallPackage
$(call Package/$(1)/install,$(WORK)/ipkg/$(1))

endef

.PHONY: feedbuild
feedbuild:
	rm -rf $(PKG_BUILD_DIR) $(WORK)/ipkg
	$(Build/Prepare)
	$(Build/Configure)
	$(Build/Compile)
	$(foreach p,$(PACKAGES),$(call InstallPackage,$(p)))
