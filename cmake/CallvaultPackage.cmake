# Install rules, the CMake package (find_package(callvault CONFIG)), the
# pkg-config file and CPack's Debian package. Included by the top-level
# CMakeLists.txt when CALLVAULT_INSTALL is on (the default as the top-level
# project). docs/decisions/0023-package.md says why it is shaped this way.
include(CMakePackageConfigHelpers)

set(CALLVAULT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/callvault)

set(_cv_install_targets callvault)
if(TARGET callvault_shared)
  list(APPEND _cv_install_targets callvault_shared)
endif()
install(TARGETS ${_cv_install_targets} EXPORT callvaultTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/engine/include/callvault
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.h")
if(CALLVAULT_BUILD_TOOLS)
  install(TARGETS callvault_bin RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
endif()

install(EXPORT callvaultTargets NAMESPACE callvault:: DESTINATION ${CALLVAULT_CMAKE_DIR}
  COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/callvaultConfig.cmake.in
  ${PROJECT_BINARY_DIR}/callvaultConfig.cmake
  INSTALL_DESTINATION ${CALLVAULT_CMAKE_DIR})
# 0.x: a minor version may break the API (docs/compatibility.md), so a
# request for 0.1 accepts 0.1.z only; from 1.0 on, any 1.y >= the request.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_cv_compat SameMinorVersion)
else()
  set(_cv_compat SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/callvaultConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${_cv_compat})
install(FILES
    ${PROJECT_BINARY_DIR}/callvaultConfig.cmake
    ${PROJECT_BINARY_DIR}/callvaultConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/Findsodium.cmake
  DESTINATION ${CALLVAULT_CMAKE_DIR} COMPONENT dev)

# pkg-config: `pkg-config --cflags --libs callvault` links the shared
# library; `--static` adds what the static one needs.
# Relocatable: paths relative to the .pc file, so `cmake --install --prefix`
# and the Debian package's /usr both work.
file(RELATIVE_PATH CALLVAULT_PC_PREFIX_REL ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
     ${CMAKE_INSTALL_PREFIX})
configure_file(${PROJECT_SOURCE_DIR}/cmake/callvault.pc.in ${PROJECT_BINARY_DIR}/callvault.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/callvault.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# CPack: one Debian package, libcallvault-dev (library, headers, CMake and
# pkg-config files, the CLI). `cpack -G DEB` in the build directory;
# scripts/check-deb.sh builds it and lists its files (a ctest).
set(CPACK_PACKAGE_NAME libcallvault-dev)
set(CPACK_PACKAGE_VENDOR callvault)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Embeddable encrypted, tenant-partitioned store of call data (library, headers, CLI)")
set(CPACK_PACKAGE_CONTACT "callvault maintainers <callvault@example.invalid>")
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
# What a consumer needs to link the shared and the static library
# (Debian 12 package names; the CLI needs only the runtime libraries in them).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "librocksdb-dev (>= 7.8), libsodium-dev (>= 1.0.18), libssl-dev, libzstd-dev, libflatbuffers-dev (>= 2.0.8), pkg-config")
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
include(CPack)
