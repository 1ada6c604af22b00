# Debian packages with CPack: `cpack -G DEB` in the build directory writes
#   libpusher0      the shared library (SONAME libpusher.so.<major>)
#   libpusher-dev   headers, static library, pusher.pc, the CMake package,
#                   libpusher(3)
#   pusher-tools    pusher, pusherd, pusher(1), pusherd(8), the systemd unit
#                   pusherd.service and the example /etc/pusherd/pusherd.json
# Dependencies on other packages come from dpkg-shlibdeps; the packages of
# this project depend on each other at the same version.
# tests/integration/packages_deb.sh builds and checks them.

# The unit and the example configuration belong to the packages only: a plain
# `cmake --install` leaves them out (EXCLUDE_FROM_ALL), a component install
# (which cpack does) includes them.
if(TARGET pusherd)
  install(FILES packaging/deb/pusherd.service DESTINATION lib/systemd/system
    COMPONENT tools EXCLUDE_FROM_ALL)
  install(FILES packaging/deb/pusherd.json DESTINATION /etc/pusherd
    COMPONENT tools EXCLUDE_FROM_ALL)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libpusher)
set(CPACK_PACKAGE_VENDOR "libpusher")
set(CPACK_PACKAGE_CONTACT "libpusher maintainers <libpusher@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL lib dev)
if(TARGET pusherd AND TARGET pusher_cli)
  list(APPEND CPACK_COMPONENTS_ALL tools)
endif()

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Inter-component dependencies become "Depends: libpusher0 (= VERSION)".
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
# pusher and pusherd link libpusher statically: pusher-tools does not
# depend on libpusher0.

set(CPACK_DEBIAN_LIB_DESCRIPTION "Pusher Channels client library (shared)
libpusher speaks the Pusher Channels protocol 7 over WebSocket: public,
private, presence and encrypted channels, client events, user sign-in,
and the HTTP API for publishing.")
set(CPACK_DEBIAN_LIB_PACKAGE_NAME libpusher${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
# A shlibs file, so that programs built on libpusher depend on this package.
# (Only libpusher0 holds a shared library.)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

set(CPACK_DEBIAN_DEV_DESCRIPTION "Pusher Channels client library (development files)
Headers, the static library, pkg-config file (pusher.pc), CMake package
(find_package(pusher): pusher::pusher, pusher::pusher_static) and the
libpusher(3) manual.")
set(CPACK_COMPONENT_DEV_DEPENDS lib)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpusher-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# The static library and pusher.pc name these libraries.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libuv1-dev, libssl-dev, libjansson-dev, libcurl4-openssl-dev | libcurl-dev, libsodium-dev, pkg-config")

set(CPACK_DEBIAN_TOOLS_DESCRIPTION "Pusher Channels command-line client and server
pusher listens to and publishes on Pusher Channels; pusherd is a Pusher
Channels compatible server (WebSocket protocol 7 and the HTTP API), with a
hardened systemd unit and an example configuration in /etc/pusherd.")
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME pusher-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION net)
set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/postrm
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
