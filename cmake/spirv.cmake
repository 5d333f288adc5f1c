# SPIR-V kernels for the Level Zero backend, compiled at BUILD time from the OpenCL C
# sources of the OpenCL backend (kernels/opencl/*.cl): one module per line of
# kernels/level_zero/spirv_variants.def, by clang (OpenCL C 1.2 to spir64 LLVM bitcode)
# then llvm-spirv, into ${PROJECT_BINARY_DIR}/spirv/<variant>.spv (target anychip_spirv),
# embedded into anychip_backends (cmake/embed_binary.cmake).
#
# Optional, like the vendor SDKs: without a clang and an llvm-spirv of one LLVM major
# version (Debian: clang-14, llvm-spirv-14) the library builds without the modules, and
# level_zero devices are unavailable with that reason. ANYCHIP_SPIRV_CLANG and
# ANYCHIP_LLVM_SPIRV choose other tools.
#
# Include it after anychip_backends is defined: include(cmake/spirv.cmake). Included
# earlier (e.g. by CMAKE_PROJECT_anychip_INCLUDE), it runs at the end of the top-level
# CMakeLists.txt instead. Including it twice is harmless.

include_guard(GLOBAL)

function(anychip_spirv_tools out_clang out_translator out_why)
  # llvm-spirv reads only the bitcode of its own LLVM version: a pair of one version.
  if(ANYCHIP_SPIRV_CLANG AND ANYCHIP_LLVM_SPIRV)
    set(${out_clang} ${ANYCHIP_SPIRV_CLANG} PARENT_SCOPE)
    set(${out_translator} ${ANYCHIP_LLVM_SPIRV} PARENT_SCOPE)
    return()
  endif()
  foreach(v 20 19 18 17 16 15 14)
    find_program(ANYCHIP_CLANG_${v} clang-${v})
    find_program(ANYCHIP_LLVM_SPIRV_${v} llvm-spirv-${v})
    if(ANYCHIP_CLANG_${v} AND ANYCHIP_LLVM_SPIRV_${v})
      set(${out_clang} ${ANYCHIP_CLANG_${v}} PARENT_SCOPE)
      set(${out_translator} ${ANYCHIP_LLVM_SPIRV_${v}} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  # Unversioned names: accepted when both report the same LLVM major version.
  find_program(ANYCHIP_CLANG_UNVERSIONED clang)
  find_program(ANYCHIP_LLVM_SPIRV_UNVERSIONED llvm-spirv)
  if(ANYCHIP_CLANG_UNVERSIONED AND ANYCHIP_LLVM_SPIRV_UNVERSIONED)
    execute_process(COMMAND ${ANYCHIP_CLANG_UNVERSIONED} --version OUTPUT_VARIABLE cv ERROR_QUIET)
    execute_process(COMMAND ${ANYCHIP_LLVM_SPIRV_UNVERSIONED} --version OUTPUT_VARIABLE tv ERROR_QUIET)
    string(REGEX MATCH "version ([0-9]+)" _ "${cv}")
    set(clang_major "${CMAKE_MATCH_1}")
    string(REGEX MATCH "version ([0-9]+)" _ "${tv}")
    if(clang_major AND clang_major STREQUAL CMAKE_MATCH_1)
      set(${out_clang} ${ANYCHIP_CLANG_UNVERSIONED} PARENT_SCOPE)
      set(${out_translator} ${ANYCHIP_LLVM_SPIRV_UNVERSIONED} PARENT_SCOPE)
      return()
    endif()
    set(${out_why} "clang (LLVM ${clang_major}) and llvm-spirv (LLVM ${CMAKE_MATCH_1}) differ in LLVM version" PARENT_SCOPE)
    return()
  endif()
  set(${out_why} "no clang and llvm-spirv of one LLVM version (Debian: clang-14 llvm-spirv-14)" PARENT_SCOPE)
endfunction()

function(anychip_spirv_modules)
  set(src ${PROJECT_SOURCE_DIR}/kernels/opencl)
  set(def ${PROJECT_SOURCE_DIR}/kernels/level_zero/spirv_variants.def)
  set(dir ${PROJECT_BINARY_DIR}/spirv)
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${def} ${src}/common.cl)

  set(why "")
  anychip_spirv_tools(clang translator why)
  # The sources must take their shapes as arguments (AC_SHAPE_ARGS, kernels/opencl/common.cl).
  file(STRINGS ${src}/common.cl shape_args REGEX "AC_SHAPE_ARGS")
  if(NOT shape_args)
    set(why "kernels/opencl/common.cl has no AC_SHAPE_ARGS (shapes as kernel arguments)")
  endif()
  if(NOT clang OR NOT translator OR why)
    message(STATUS "Level Zero SPIR-V kernels: not built (${why})")
    target_compile_definitions(anychip_backends PRIVATE "ANYCHIP_SPIRV_MISSING=\"${why}\"")
    return()
  endif()
  execute_process(COMMAND ${clang} --version OUTPUT_VARIABLE clang_version ERROR_QUIET)
  string(REGEX MATCH "clang version [0-9.]+" clang_version "${clang_version}")
  get_filename_component(translator_name ${translator} NAME)
  set(tools "${clang_version}, ${translator_name}, SPIR-V 1.2")
  message(STATUS "Level Zero SPIR-V kernels: ${tools}")

  # OpenCL C `inline` is C99 inline: compiled without LLVM's passes (llvm-spirv cannot
  # translate what they emit, e.g. `freeze`), such functions would stay unresolved
  # imports. As `static inline`, a module holds just the helpers its kernel calls. The
  # driver's compiler optimizes the SPIR-V when it builds the module.
  set(flags -cl-std=CL1.2 -target spir64 -O2 -Xclang -disable-llvm-passes "-Dinline=static inline" -DAC_SHAPE_ARGS=1)
  file(STRINGS ${def} lines REGEX "^AC_SPIRV_VARIANT\\(")
  set(modules "")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^AC_SPIRV_VARIANT\\(([A-Za-z0-9_]+), \"([A-Za-z0-9_]+\\.cl)\", [0-9]+, [0-9]+, [0-9]+, \"([^\"]*)\"\\)$")
      message(FATAL_ERROR "${def}: cannot read this line (see the file's header for the form):\n${line}")
    endif()
    set(name ${CMAKE_MATCH_1})
    set(file ${CMAKE_MATCH_2})
    separate_arguments(defines UNIX_COMMAND "${CMAKE_MATCH_3}")
    list(TRANSFORM defines PREPEND -D)
    add_custom_command(
      OUTPUT ${dir}/${name}.spv
      COMMAND ${clang} ${flags} ${defines} -include ${src}/common.cl -emit-llvm -c ${src}/${file} -o ${dir}/${name}.bc
      COMMAND ${translator} --spirv-max-version=1.2 ${dir}/${name}.bc -o ${dir}/${name}.spv
      DEPENDS ${src}/common.cl ${src}/${file} ${def}
      COMMENT "SPIR-V ${name}"
      VERBATIM)
    list(APPEND modules ${dir}/${name}.spv)
  endforeach()
  file(MAKE_DIRECTORY ${dir})
  add_custom_target(anychip_spirv DEPENDS ${modules})

  set(out ${PROJECT_BINARY_DIR}/generated/level_zero_spirv_modules.cpp)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DFILES=${modules}" -DNAMESPACE=anychip::backends::level_zero
            -DFUNCTION=embedded_spirv_modules -DHEADER=backends/level_zero/spirv_modules.hpp -DTYPE=SpirvModule
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_binary.cmake
    DEPENDS ${modules} ${PROJECT_SOURCE_DIR}/cmake/embed_binary.cmake
    COMMENT "Embedding the SPIR-V modules"
    VERBATIM)
  target_sources(anychip_backends PRIVATE ${out})
  target_compile_definitions(anychip_backends PRIVATE ANYCHIP_HAVE_SPIRV_MODULES=1 "ANYCHIP_SPIRV_TOOLS=\"${tools}\"")
endfunction()

if(TARGET anychip_backends)
  anychip_spirv_modules()
else()
  cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL anychip_spirv_modules)
endif()
