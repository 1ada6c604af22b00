# CPACK_PROJECT_CONFIG_FILE (cmake/packaging.cmake): cpack reads this once
# per generator.  The Debian packages must hold the library under
# /usr/lib/<multiarch>, which only a tree configured with
# -DCMAKE_INSTALL_PREFIX=/usr gives (GNUInstallDirs); refuse any other tree.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PUSHER_DEB_OK)
  message(FATAL_ERROR
    "libpusher: this build tree installs the library into "
    "'${CPACK_PUSHER_DEB_PREFIX}/${CPACK_PUSHER_DEB_LIBDIR}'; the Debian "
    "packages need /usr/${CPACK_PUSHER_DEB_LIBDIR_WANTED}.  Configure a "
    "separate tree with -DCMAKE_INSTALL_PREFIX=/usr and run cpack there, or "
    "run scripts/make-debs.sh, which does both.")
endif()
