# What `cmake --install BUILD [--prefix DIR]` puts under the prefix (README.md
# "Install"): the libraries, the header and ringcask.pc (component lib), and
# the binaries this build made (component bin). kvd, its systemd unit, man
# pages and shell completions have their install rules next to their sources.
install(TARGETS ringcask_shared
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT lib)
install(FILES ${RC_STATIC_LIB} DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib)
install(FILES ${PROJECT_SOURCE_DIR}/engine/include/ringcask.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT lib)
install(FILES ${RC_PC_FILE} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT lib)

# kvd (and its systemd unit) are installed by server/CMakeLists.txt
foreach(bin kv kvdump kvload kvbench)
  if(TARGET ${bin})
    install(TARGETS ${bin} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT bin)
  endif()
endforeach()
