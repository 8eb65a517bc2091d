# Stand-in for OpenWrt's rules.mk: what golang-package.mk and the package
# Makefile read from it (see README.md). WORK, ARCH, TARGET_CROSS come from
# the command line.
comma:=,
empty:=
space:=$(empty) $(empty)
tolower=$(shell echo '$(1)' | tr A-Z a-z)
qstrip=$(strip $(subst ",,$(1)))
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(WORK)/build_dir
STAGING_DIR:=$(WORK)/staging_dir
DL_DIR:=$(WORK)/dl
TMP_DIR:=$(WORK)/tmp
HOST_OS:=Linux
HOST_ARCH:=$(shell uname -m)
SOURCE_DATE_EPOCH:=1700000000
CP:=cp -fpR
LN:=ln -sf
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
INSTALL_DATA:=install -m0644
TARGET_CC:=$(TARGET_CROSS)gcc
TARGET_CXX:=$(TARGET_CROSS)g++
TARGET_CFLAGS:=-Os -pipe -mno-branch-likely -mips32r2 -mtune=24kc -fno-caller-saves
TARGET_CPPFLAGS:=$(TARGET_CPPFLAGS_EXTRA)
TARGET_LDFLAGS:=-znow -zrelro
