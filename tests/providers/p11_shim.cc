// A fault-injecting PKCS#11 module for tests: forwards every call to the
// real module named by $CV_P11_SHIM_REAL (SoftHSM2), except that while the
// file named by $CV_P11_SHIM_ARM_FILE exists and holds the name of one of
// the wrapped functions (e.g. "C_DestroyObject"), that function fails with
// CKR_DEVICE_ERROR without reaching the token: a token that dies mid-purge.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace {

CK_FUNCTION_LIST g_list;
CK_FUNCTION_LIST_PTR g_real = nullptr;

bool Armed(const char* fn) {
  const char* path = std::getenv("CV_P11_SHIM_ARM_FILE");
  if (path == nullptr) return false;
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  char buf[64] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string s(buf, n);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s == fn;
}

CK_RV GenerateKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                  CK_OBJECT_HANDLE_PTR k) {
  if (Armed("C_GenerateKey")) return CKR_DEVICE_ERROR;
  return g_real->C_GenerateKey(s, m, t, n, k);
}
CK_RV Encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dn, CK_BYTE_PTR e, CK_ULONG_PTR en) {
  if (Armed("C_Encrypt")) return CKR_DEVICE_ERROR;  // the provider closes the session
  return g_real->C_Encrypt(s, d, dn, e, en);
}
CK_RV Decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR e, CK_ULONG en, CK_BYTE_PTR d, CK_ULONG_PTR dn) {
  if (Armed("C_Decrypt")) return CKR_DEVICE_ERROR;
  return g_real->C_Decrypt(s, e, en, d, dn);
}
CK_RV DestroyObject(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o) {
  if (Armed("C_DestroyObject")) return CKR_DEVICE_ERROR;
  return g_real->C_DestroyObject(s, o);
}
CK_RV Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dn, CK_BYTE_PTR sig, CK_ULONG_PTR sn) {
  if (Armed("C_Sign")) return CKR_DEVICE_ERROR;
  return g_real->C_Sign(s, d, dn, sig, sn);
}
CK_RV FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  if (Armed("C_FindObjectsInit")) return CKR_DEVICE_ERROR;
  return g_real->C_FindObjectsInit(s, t, n);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  static std::once_flag once;
  static CK_RV status = CKR_OK;
  std::call_once(once, [] {
    const char* real = std::getenv("CV_P11_SHIM_REAL");
    void* h = real ? ::dlopen(real, RTLD_NOW | RTLD_LOCAL) : nullptr;
    auto get = h ? reinterpret_cast<CK_C_GetFunctionList>(::dlsym(h, "C_GetFunctionList")) : nullptr;
    if (get == nullptr || get(&g_real) != CKR_OK) {
      status = CKR_GENERAL_ERROR;
      return;
    }
    std::memcpy(&g_list, g_real, sizeof g_list);
    g_list.C_GenerateKey = GenerateKey;
    g_list.C_Encrypt = Encrypt;
    g_list.C_Decrypt = Decrypt;
    g_list.C_DestroyObject = DestroyObject;
    g_list.C_Sign = Sign;
    g_list.C_FindObjectsInit = FindObjectsInit;
  });
  if (status != CKR_OK) return status;
  *out = &g_list;
  return CKR_OK;
}
