# Debian packages with CPack: `cpack -G DEB` in the build directory writes
#   libpusher0      the shared library (SONAME libpusher.so.<major>)
#   libpusher-dev   headers, static library, pusher.pc, the CMake package,
#                   libpusher(3)
#   pusher-tools    pusher, pusherd, pusher(1), pusherd(8), the systemd unit
#                   pusherd.service and the example /etc/pusherd/pusherd.json
# Dependencies on other packages come from dpkg-shlibdeps; the packages of
# this project depend on each other at the same version.
# tests/integration/packages_deb.sh builds and checks them;
# scripts/check-debs-clean-debian.sh installs them on a clean Debian 12.
#
# Multiarch: Debian wants the library, pusher.pc and the CMake package under
# /usr/lib/<DEB_HOST_MULTIARCH>.  GNUInstallDirs chooses that libdir only
# when CMAKE_INSTALL_PREFIX is /usr at configure time, and the install rules
# (and the relative paths inside pusher.pc and the CMake package) are fixed
# then.  So the packages are made from a tree configured with
# -DCMAKE_INSTALL_PREFIX=/usr (scripts/make-debs.sh configures one); in any
# other tree `cpack -G DEB` stops with an error rather than write packages
# with /usr/lib/libpusher.so.0.  `cmake --install --prefix DIR` is not
# affected: any tree installs anywhere.

# The unit and the example configuration belong to the packages only: a plain
# `cmake --install` leaves them out (EXCLUDE_FROM_ALL), a component install
# (which cpack does) includes them.
if(TARGET pusherd)
  install(FILES packaging/deb/pusherd.service DESTINATION lib/systemd/system
    COMPONENT tools EXCLUDE_FROM_ALL)
  install(FILES packaging/deb/pusherd.json DESTINATION /etc/pusherd
    COMPONENT tools EXCLUDE_FROM_ALL)
endif()

# Every package carries /usr/share/doc/<package>/copyright (Debian policy
# 12.5).  Component installs only, like the unit above.
foreach(comp_pkg lib:libpusher${PROJECT_VERSION_MAJOR} dev:libpusher-dev tools:pusher-tools)
  string(REPLACE ":" ";" comp_pkg "${comp_pkg}")
  list(GET comp_pkg 0 comp)
  list(GET comp_pkg 1 pkg)
  if(comp STREQUAL "tools" AND NOT TARGET pusherd)
    continue()
  endif()
  install(FILES packaging/deb/copyright DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg}
    COMPONENT ${comp} EXCLUDE_FROM_ALL)
endforeach()

# The multiarch triplet of this machine (x86_64-linux-gnu, ...).
set(PUSHER_DEB_MULTIARCH "")
find_program(PUSHER_DPKG_ARCHITECTURE dpkg-architecture)
if(PUSHER_DPKG_ARCHITECTURE)
  execute_process(COMMAND ${PUSHER_DPKG_ARCHITECTURE} -qDEB_HOST_MULTIARCH
    OUTPUT_VARIABLE PUSHER_DEB_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(NOT PUSHER_DEB_MULTIARCH)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
    OUTPUT_VARIABLE PUSHER_DEB_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
set(CPACK_PUSHER_DEB_LIBDIR_WANTED "lib/${PUSHER_DEB_MULTIARCH}")
set(CPACK_PUSHER_DEB_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
set(CPACK_PUSHER_DEB_PREFIX "${CMAKE_INSTALL_PREFIX}")
if(PUSHER_DEB_MULTIARCH AND CMAKE_INSTALL_PREFIX STREQUAL "/usr"
   AND CMAKE_INSTALL_LIBDIR STREQUAL "lib/${PUSHER_DEB_MULTIARCH}")
  set(CPACK_PUSHER_DEB_OK ON)
else()
  set(CPACK_PUSHER_DEB_OK OFF)
  message(STATUS "Debian packages: not from this tree (libdir ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}); "
    "scripts/make-debs.sh builds them in a tree with CMAKE_INSTALL_PREFIX=/usr")
endif()
# Read by cpack: refuses the DEB generator unless CPACK_PUSHER_DEB_OK.
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/cpack-project.cmake)

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
# libcurl4: pusherd opens libcurl.so.4 with dlopen() for webhooks
# (docs/webhooks.md, "libcurl at run time"), which dpkg-shlibdeps cannot
# see; 7.85.0 for CURLOPT_PROTOCOLS_STR.  (The pusher CLI links it, so
# shlibdeps may add its own libcurl4 entry too.)
set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "adduser, libcurl4 (>= 7.85.0)")
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/postrm
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
