// The OpenCL entry points anychip uses, resolved at run time from the ICD loader
// (libOpenCL.so.1) so that one binary runs on machines without OpenCL. Types and constants
// come from <CL/cl.h>; this header exists only when it does (ANYCHIP_HAVE_OPENCL_HEADERS).
#pragma once

#if ANYCHIP_HAVE_OPENCL_HEADERS

#include <CL/cl.h>

#include <string>

namespace anychip::backends::opencl {

// X(name) for every entry point used (OpenCL 1.2).
#define ANYCHIP_CL_FUNCTIONS(X)                                                               \
  X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo)                \
  X(clCreateContext) X(clReleaseContext) X(clCreateCommandQueue) X(clReleaseCommandQueue)     \
  X(clCreateBuffer) X(clReleaseMemObject) X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer)      \
  X(clEnqueueMarkerWithWaitList) X(clFlush) X(clFinish) X(clWaitForEvents) X(clGetEventInfo)  \
  X(clGetEventProfilingInfo) X(clRetainEvent) X(clReleaseEvent)                               \
  X(clCreateProgramWithSource) X(clCreateProgramWithBinary) X(clBuildProgram)                 \
  X(clGetProgramInfo) X(clGetProgramBuildInfo) X(clReleaseProgram) X(clCreateKernel)          \
  X(clReleaseKernel) X(clSetKernelArg) X(clGetKernelWorkGroupInfo) X(clEnqueueNDRangeKernel)

struct Api {
#define ANYCHIP_CL_POINTER(name) decltype(&::name) name = nullptr;
  ANYCHIP_CL_FUNCTIONS(ANYCHIP_CL_POINTER)
#undef ANYCHIP_CL_POINTER
};

// The loader's entry points, loaded on first use and kept for the life of the process;
// nullptr when there is no usable loader, with the reason in `why`
// ("no OpenCL ICD loader (libOpenCL.so.1: cannot open shared object file ...)").
const Api* api(std::string* why);

// "CL_INVALID_VALUE (-30)".
std::string error_name(cl_int code);

}  // namespace anychip::backends::opencl

#endif  // ANYCHIP_HAVE_OPENCL_HEADERS
