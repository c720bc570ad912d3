# Criterion suites of rcscript (server/script), with an in-memory fake host:
# they need neither the engine nor the server. tests/server/CMakeLists.txt
# includes this file:  include(${CMAKE_CURRENT_LIST_DIR}/script.cmake)
if(NOT COMMAND rc_add_test)
  function(rc_add_test name)
    cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CRITERION Threads::Threads)
    add_test(NAME ${name} COMMAND ${name} --jobs 2)
    set_tests_properties(${name} PROPERTIES TIMEOUT 600)
  endfunction()
endif()

set(RCSCRIPT_TEST_DIR ${CMAKE_CURRENT_LIST_DIR})
foreach(suite sandbox api limits json pattern)
  rc_add_test(test_script_${suite}
    SOURCES ${RCSCRIPT_TEST_DIR}/test_script_${suite}.c ${RCSCRIPT_TEST_DIR}/script_fake_host.c
    LIBS rcscript)
  target_include_directories(test_script_${suite} PRIVATE ${RCSCRIPT_TEST_DIR})
endforeach()
