// Pkcs11KeyProvider: KEKs and the signing key in a PKCS#11 token; the
// keyring generations, the tombstone log and the writer lock in a local
// state directory (kept by a FileKeyProvider that never holds a KEK). See
// callvault/pkcs11_key_provider.h and docs/decisions/0029-pkcs11-key-provider.md.
#include "callvault/pkcs11_key_provider.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

// p11-kit's header (the OASIS names in its compatibility mode).
#include <p11-kit/pkcs11.h>

namespace callvault {

namespace {

constexpr size_t kIvBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr unsigned char kSealVersion = 0x01;  // the first byte of a sealed keyring
// DER of the Ed25519 object identifier 1.3.101.112 (RFC 8410), CKA_EC_PARAMS.
constexpr unsigned char kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

std::string Hex32(CK_RV rv) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08lX", static_cast<unsigned long>(rv));
  return buf;
}

// The name of a CKR_ code, for messages (the common ones; others in hex).
std::string RvName(CK_RV rv) {
  switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_HOST_MEMORY: return "CKR_HOST_MEMORY";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_ENCRYPTED_DATA_LEN_RANGE: return "CKR_ENCRYPTED_DATA_LEN_RANGE";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_DATA_LEN_RANGE: return "CKR_DATA_LEN_RANGE";
    case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
    case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    default: return Hex32(rv);
  }
}

// Failures that mean the session (not the request) is gone: such a session
// is not returned to the pool.
bool SessionGone(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
         rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR;
}

Status TokenError(const char* fn, CK_RV rv, const std::string& what) {
  std::string m = "PKCS#11 " + std::string(fn) + " failed (" + RvName(rv) + ") " + what;
  if (rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR) {
    return Status::IOError(m + "; the token is unavailable");
  }
  return Status::KeyError(m);
}

// --- The module, once per process per path --------------------------------
// C_Initialize and C_Finalize are process-wide: every provider object on one
// module shares one Module, finalised when the last goes.
class Module {
 public:
  static Result<std::shared_ptr<Module>> Acquire(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<Module>> loaded;
    std::lock_guard<std::mutex> l(mu);
    if (auto m = loaded[path].lock()) return m;
    struct stat st;
    if (path.empty()) return Status::InvalidArgument("PKCS#11 module path is empty");
    if (::stat(path.c_str(), &st) != 0) {
      return Status::NotFound("PKCS#11 module " + path + " does not exist (" +
                              std::strerror(errno) + "); install it (Debian: softhsm2) or pass "
                              "the right path");
    }
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = ::dlerror();
      return Status::InvalidArgument("PKCS#11 module " + path + " cannot be loaded: " +
                                     (e ? e : "dlopen failed"));
    }
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(h, "C_GetFunctionList"));
    CK_FUNCTION_LIST_PTR f = nullptr;
    if (get == nullptr || get(&f) != CKR_OK || f == nullptr) {
      ::dlclose(h);
      return Status::InvalidArgument("PKCS#11 module " + path +
                                     " is not a PKCS#11 module (no C_GetFunctionList)");
    }
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;  // the module locks with the OS's primitives
    CK_RV rv = f->C_Initialize(&args);
    bool finalize = true;
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      finalize = false;  // someone else in this process owns the module's lifetime
    } else if (rv != CKR_OK) {
      ::dlclose(h);
      return Status::KeyError("PKCS#11 module " + path + ": C_Initialize failed (" + RvName(rv) +
                              ")");
    }
    auto m = std::shared_ptr<Module>(new Module(h, f, finalize));
    loaded[path] = m;
    return m;
  }
  ~Module() {
    if (finalize_) f_->C_Finalize(nullptr);
    ::dlclose(handle_);
  }
  CK_FUNCTION_LIST_PTR f() const { return f_; }

 private:
  Module(void* h, CK_FUNCTION_LIST_PTR f, bool finalize) : handle_(h), f_(f), finalize_(finalize) {}
  void* handle_;
  CK_FUNCTION_LIST_PTR f_;
  bool finalize_;
};

// Reads the PIN from the file or the environment variable the options name.
Status ReadPin(const Pkcs11KeyProviderOptions& o, SecretBytes* pin) {
  if (o.pin_file.empty() == o.pin_env.empty()) {
    return Status::InvalidArgument(
        "PKCS#11: give exactly one of a PIN file and a PIN environment variable name");
  }
  std::string_view value;
  std::vector<char> buf;
  if (!o.pin_env.empty()) {
    const char* v = std::getenv(o.pin_env.c_str());
    if (v == nullptr || *v == '\0') {
      return Status::InvalidArgument("PKCS#11: environment variable " + o.pin_env +
                                     " (the PIN) is not set");
    }
    value = v;
  } else {
    int fd = ::open(o.pin_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
      return Status::NotFound("PKCS#11: PIN file " + o.pin_file + " does not exist");
    }
    if (fd < 0) {
      return Status::FailedPrecondition("PKCS#11: PIN file " + o.pin_file + ": " +
                                        std::strerror(errno));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
        st.st_uid != ::geteuid()) {
      ::close(fd);
      return Status::FailedPrecondition("PKCS#11: PIN file " + o.pin_file +
                                        " must be a regular file of this user with no access "
                                        "for group or others (chmod 600)");
    }
    buf.resize(256);
    ssize_t n = ::read(fd, buf.data(), buf.size());
    ::close(fd);
    if (n < 0) return Status::IOError("PKCS#11: read PIN file " + o.pin_file);
    size_t len = 0;
    while (len < static_cast<size_t>(n) && buf[len] != '\n' && buf[len] != '\r') ++len;
    value = std::string_view(buf.data(), len);
  }
  if (value.empty()) return Status::InvalidArgument("PKCS#11: the PIN is empty");
  SecretBytes p(value.size());
  std::memcpy(p.data(), value.data(), value.size());
  if (!buf.empty()) std::fill(buf.begin(), buf.end(), '\0');
  *pin = std::move(p);
  return Status::OK();
}

std::string Padded32ToString(const CK_UTF8CHAR* s) {
  std::string out(reinterpret_cast<const char*>(s), 32);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
  return out;
}

// --- A logged-in token with a pool of sessions ------------------------------
class Token {
 public:
  static Result<std::shared_ptr<Token>> Open(const Pkcs11KeyProviderOptions& o) {
    CV_ASSIGN_OR_RETURN(auto module, Module::Acquire(o.module_path));
    CK_FUNCTION_LIST_PTR f = module->f();
    CK_ULONG n = 0;
    CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &n);
    if (rv != CKR_OK) return TokenError("C_GetSlotList", rv, "listing the token slots");
    std::vector<CK_SLOT_ID> slots(n);
    rv = f->C_GetSlotList(CK_TRUE, slots.data(), &n);
    if (rv != CKR_OK) return TokenError("C_GetSlotList", rv, "listing the token slots");
    slots.resize(n);
    std::optional<CK_SLOT_ID> found;
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO ti;
      if (f->C_GetTokenInfo(s, &ti) != CKR_OK) continue;
      if (!(ti.flags & CKF_TOKEN_INITIALIZED)) continue;
      if (Padded32ToString(ti.label) == o.token_label) {
        found = s;
        break;
      }
    }
    if (!found) {
      return Status::NotFound("PKCS#11: no initialised token labelled '" + o.token_label +
                              "' in module " + o.module_path + " (" + std::to_string(n) +
                              " token(s) present)");
    }
    SecretBytes pin;
    CV_RETURN_IF_ERROR(ReadPin(o, &pin));
    auto t = std::shared_ptr<Token>(new Token(std::move(module), *found, o.token_label));
    CK_SESSION_HANDLE s;
    rv = f->C_OpenSession(*found, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
    if (rv != CKR_OK) return TokenError("C_OpenSession", rv, "on the token");
    t->anchor_ = s;
    rv = f->C_Login(s, CKU_USER, pin.data(), pin.size());
    pin.Wipe();
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE) {
      return Status::KeyError("PKCS#11: the token '" + o.token_label +
                              "' refused the PIN (" + RvName(rv) + ")");
    }
    if (rv == CKR_PIN_LOCKED) {
      return Status::KeyError("PKCS#11: the user PIN of token '" + o.token_label +
                              "' is locked (CKR_PIN_LOCKED); the security officer must reset it");
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return TokenError("C_Login", rv, "on token '" + o.token_label + "'");
    }
    return t;
  }

  ~Token() {
    std::lock_guard<std::mutex> l(mu_);
    for (CK_SESSION_HANDLE s : pool_) f()->C_CloseSession(s);
    // The anchor last: closing an application's last session logs it out.
    if (anchor_ != CK_INVALID_HANDLE) f()->C_CloseSession(anchor_);
  }

  CK_FUNCTION_LIST_PTR f() const { return module_->f(); }
  const std::string& label() const { return label_; }

  // A session from the pool, returned to it when the lease ends unless
  // the token said the session is gone.
  class Lease {
   public:
    Lease(Token* t, CK_SESSION_HANDLE s) : t_(t), s_(s) {}
    Lease(Lease&& o) noexcept : t_(o.t_), s_(o.s_) { o.t_ = nullptr; }
    Lease(const Lease&) = delete;
    ~Lease() {
      if (t_ == nullptr) return;
      if (bad_) {
        t_->f()->C_CloseSession(s_);
      } else {
        std::lock_guard<std::mutex> l(t_->mu_);
        t_->pool_.push_back(s_);
      }
    }
    CK_SESSION_HANDLE get() const { return s_; }
    // Records the result of a call on this session; returns it.
    CK_RV Check(CK_RV rv) {
      if (SessionGone(rv)) bad_ = true;
      return rv;
    }

   private:
    Token* t_;
    CK_SESSION_HANDLE s_;
    bool bad_ = false;
  };

  Result<Lease> Session() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!pool_.empty()) {
        CK_SESSION_HANDLE s = pool_.back();
        pool_.pop_back();
        return Lease(this, s);
      }
    }
    CK_SESSION_HANDLE s;
    CK_RV rv = f()->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
    if (rv != CKR_OK) return TokenError("C_OpenSession", rv, "on token '" + label_ + "'");
    return Lease(this, s);
  }

  // Every object matching `tmpl`.
  Result<std::vector<CK_OBJECT_HANDLE>> Find(Lease& s, CK_ATTRIBUTE* tmpl, CK_ULONG n) {
    CK_RV rv = s.Check(f()->C_FindObjectsInit(s.get(), tmpl, n));
    if (rv != CKR_OK) return TokenError("C_FindObjectsInit", rv, "searching the token");
    std::vector<CK_OBJECT_HANDLE> out;
    for (;;) {
      CK_OBJECT_HANDLE h[32];
      CK_ULONG got = 0;
      rv = s.Check(f()->C_FindObjects(s.get(), h, 32, &got));
      if (rv != CKR_OK) {
        s.Check(f()->C_FindObjectsFinal(s.get()));
        return TokenError("C_FindObjects", rv, "searching the token");
      }
      if (got == 0) break;
      out.insert(out.end(), h, h + got);
    }
    rv = s.Check(f()->C_FindObjectsFinal(s.get()));
    if (rv != CKR_OK) return TokenError("C_FindObjectsFinal", rv, "searching the token");
    return out;
  }

  Result<std::vector<CK_OBJECT_HANDLE>> FindByLabel(Lease& s, const std::string& label,
                                                    CK_OBJECT_CLASS cls) {
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
    };
    return Find(s, t, 3);
  }

  Result<std::string> Attribute(Lease& s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    CK_RV rv = s.Check(f()->C_GetAttributeValue(s.get(), h, &a, 1));
    if (rv != CKR_OK) return TokenError("C_GetAttributeValue", rv, "reading an object attribute");
    std::string v(a.ulValueLen, '\0');
    a.pValue = v.data();
    rv = s.Check(f()->C_GetAttributeValue(s.get(), h, &a, 1));
    if (rv != CKR_OK) return TokenError("C_GetAttributeValue", rv, "reading an object attribute");
    v.resize(a.ulValueLen);
    return v;
  }

  // Labels of the token objects starting with `prefix`.
  Result<std::vector<std::string>> Labels(const std::string& prefix) {
    CV_ASSIGN_OR_RETURN(Lease s, Session());
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &yes, sizeof yes}};
    CV_ASSIGN_OR_RETURN(auto handles, Find(s, t, 1));
    std::vector<std::string> out;
    for (CK_OBJECT_HANDLE h : handles) {
      CV_ASSIGN_OR_RETURN(std::string label, Attribute(s, h, CKA_LABEL));
      if (label.compare(0, prefix.size(), prefix) == 0) out.push_back(std::move(label));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  bool HasMechanism(CK_MECHANISM_TYPE m) {
    CK_MECHANISM_INFO info;
    return f()->C_GetMechanismInfo(slot_, m, &info) == CKR_OK;
  }

 private:
  Token(std::shared_ptr<Module> m, CK_SLOT_ID slot, std::string label)
      : module_(std::move(m)), slot_(slot), label_(std::move(label)) {}

  const std::shared_ptr<Module> module_;
  const CK_SLOT_ID slot_;
  const std::string label_;
  CK_SESSION_HANDLE anchor_ = CK_INVALID_HANDLE;  // holds the login; never lent
  std::mutex mu_;
  std::vector<CK_SESSION_HANDLE> pool_;  // GUARDED_BY(mu_)
};

bool ParseGen(std::string_view label, std::string_view prefix, uint32_t* out) {
  if (label.size() <= prefix.size() || label.substr(0, prefix.size()) != prefix) return false;
  uint64_t v = 0;
  for (size_t i = prefix.size(); i < label.size(); ++i) {
    char c = label[i];
    if (c < '0' || c > '9' || v > UINT32_MAX / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > UINT32_MAX || (label.size() - prefix.size() > 1 && label[prefix.size()] == '0')) {
    return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

class Pkcs11KeyProvider final : public KeyProvider {
 public:
  Pkcs11KeyProvider(std::shared_ptr<Token> token, std::shared_ptr<KeyProvider> state,
                    const Pkcs11KeyProviderOptions& o)
      : token_(std::move(token)),
        state_(std::move(state)),
        module_path_(o.module_path),
        kek_prefix_(o.object_prefix + "-kek-"),
        signing_label_(o.object_prefix + "-signing"),
        sign_in_token_(o.signing_key_in_token) {}
  ~Pkcs11KeyProvider() override { ReleaseWriterLock(); }

  std::string Describe() const override {
    return "pkcs11:" + token_->label() + "@" + module_path_ + " (state " +
           state_->LocalDirectory() + ")";
  }
  std::string LocalDirectory() const override { return state_->LocalDirectory(); }

  // The state directory's lock (flock on LOCK) is the writer lock: KEK
  // objects are created and destroyed only by the holder.
  Status AcquireWriterLock() override {
    CV_RETURN_IF_ERROR(state_->AcquireWriterLock());
    writer_.store(true);
    return Status::OK();
  }
  void ReleaseWriterLock() override {
    if (writer_.exchange(false)) state_->ReleaseWriterLock();
  }

  Result<std::vector<uint32_t>> ListKeks() override {
    CV_ASSIGN_OR_RETURN(auto labels, token_->Labels(kek_prefix_));
    std::vector<uint32_t> gens;
    for (const auto& l : labels) {
      uint32_t g;
      if (ParseGen(l, kek_prefix_, &g)) gens.push_back(g);
    }
    std::sort(gens.begin(), gens.end());
    gens.erase(std::unique(gens.begin(), gens.end()), gens.end());
    return gens;
  }

  Status CreateKek(uint32_t gen) override {
    CV_RETURN_IF_ERROR(Writable());
    const std::string label = kek_prefix_ + std::to_string(gen);
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CV_ASSIGN_OR_RETURN(auto existing, token_->FindByLabel(s, label, CKO_SECRET_KEY));
    if (!existing.empty()) return Status::AlreadyExists("KEK generation exists in the token");
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &len, sizeof len},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_ENCRYPT, &yes, sizeof yes},
        {CKA_DECRYPT, &yes, sizeof yes},
        {CKA_WRAP, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},
        {CKA_SIGN, &no, sizeof no},
        {CKA_VERIFY, &no, sizeof no},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
    };
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE h;
    CK_RV rv = s.Check(
        token_->f()->C_GenerateKey(s.get(), &mech, t, sizeof t / sizeof t[0], &h));
    if (rv != CKR_OK) {
      return TokenError("C_GenerateKey", rv, "creating KEK generation " + std::to_string(gen));
    }
    return Status::OK();
  }

  Status DestroyKek(uint32_t gen) override {
    CV_RETURN_IF_ERROR(Writable());
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CV_ASSIGN_OR_RETURN(auto hs,
                        token_->FindByLabel(s, kek_prefix_ + std::to_string(gen), CKO_SECRET_KEY));
    for (CK_OBJECT_HANDLE h : hs) {
      CK_RV rv = s.Check(token_->f()->C_DestroyObject(s.get(), h));
      if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID) {
        return TokenError("C_DestroyObject", rv, "destroying KEK generation " + std::to_string(gen));
      }
    }
    return Status::OK();
  }

  Result<std::string> Seal(uint32_t gen, const SecretBytes& plaintext,
                           std::string_view aad) override {
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, Kek(s, gen));
    std::string iv(kIvBytes, '\0');
    CK_RV rv = s.Check(token_->f()->C_GenerateRandom(
        s.get(), reinterpret_cast<CK_BYTE_PTR>(iv.data()), iv.size()));
    if (rv != CKR_OK) return TokenError("C_GenerateRandom", rv, "making an IV");
    std::string full_aad = BoundAad(gen, aad);
    CK_GCM_PARAMS p{};
    p.pIv = reinterpret_cast<CK_BYTE_PTR>(iv.data());
    p.ulIvLen = iv.size();
    p.ulIvBits = iv.size() * 8;
    p.pAAD = reinterpret_cast<CK_BYTE_PTR>(full_aad.data());
    p.ulAADLen = full_aad.size();
    p.ulTagBits = kTagBytes * 8;
    CK_MECHANISM mech = {CKM_AES_GCM, &p, sizeof p};
    rv = s.Check(token_->f()->C_EncryptInit(s.get(), &mech, key));
    if (rv != CKR_OK) return TokenError("C_EncryptInit", rv, SealWhat(gen));
    std::string out(1 + kIvBytes + plaintext.size() + kTagBytes, '\0');
    out[0] = static_cast<char>(kSealVersion);
    std::memcpy(out.data() + 1, iv.data(), kIvBytes);
    CK_ULONG n = plaintext.size() + kTagBytes;
    // An empty plaintext still needs a valid pointer (CKR_ARGUMENTS_BAD).
    CK_BYTE none = 0;
    CK_BYTE_PTR in = plaintext.empty() ? &none : const_cast<CK_BYTE_PTR>(plaintext.data());
    rv = s.Check(token_->f()->C_Encrypt(s.get(), in,
                                        plaintext.size(),
                                        reinterpret_cast<CK_BYTE_PTR>(out.data() + 1 + kIvBytes),
                                        &n));
    if (rv != CKR_OK) return TokenError("C_Encrypt", rv, SealWhat(gen));
    if (n != plaintext.size() + kTagBytes) {
      return Status::KeyError("PKCS#11 C_Encrypt returned an unexpected length " + SealWhat(gen));
    }
    return out;
  }

  Result<SecretBytes> Open(uint32_t gen, std::string_view sealed, std::string_view aad) override {
    if (sealed.size() < 1 + kIvBytes + kTagBytes ||
        static_cast<unsigned char>(sealed[0]) != kSealVersion) {
      return Status::KeyError(
          "keyring is not sealed by a PKCS#11 key provider (too short or unknown format); "
          "wrong provider for this key hierarchy, or the keyring file is damaged");
    }
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, Kek(s, gen));
    std::string iv(sealed.substr(1, kIvBytes));
    std::string full_aad = BoundAad(gen, aad);
    CK_GCM_PARAMS p{};
    p.pIv = reinterpret_cast<CK_BYTE_PTR>(iv.data());
    p.ulIvLen = iv.size();
    p.ulIvBits = iv.size() * 8;
    p.pAAD = reinterpret_cast<CK_BYTE_PTR>(full_aad.data());
    p.ulAADLen = full_aad.size();
    p.ulTagBits = kTagBytes * 8;
    CK_MECHANISM mech = {CKM_AES_GCM, &p, sizeof p};
    CK_RV rv = s.Check(token_->f()->C_DecryptInit(s.get(), &mech, key));
    if (rv != CKR_OK) return TokenError("C_DecryptInit", rv, OpenWhat(gen));
    std::string ct(sealed.substr(1 + kIvBytes));
    SecretBytes out(ct.size());
    CK_ULONG n = out.size();
    rv = s.Check(token_->f()->C_Decrypt(s.get(), reinterpret_cast<CK_BYTE_PTR>(ct.data()),
                                        ct.size(), out.data(), &n));
    if (rv != CKR_OK) {
      // SoftHSM2 reports a bad tag as CKR_GENERAL_ERROR, others as
      // CKR_ENCRYPTED_DATA_INVALID: all the same to the caller.
      if (SessionGone(rv)) return TokenError("C_Decrypt", rv, OpenWhat(gen));
      return Status::KeyError("keyring failed authentication under KEK generation " +
                              std::to_string(gen) + " in the token (C_Decrypt: " + RvName(rv) +
                              "; wrong token, or the keyring file is damaged)");
    }
    if (n != ct.size() - kTagBytes) {
      return Status::KeyError("PKCS#11 C_Decrypt returned an unexpected length " + OpenWhat(gen));
    }
    SecretBytes exact(n);
    if (n > 0) std::memcpy(exact.data(), out.data(), n);
    return exact;
  }

  Result<std::vector<uint64_t>> ListKeyrings() override { return state_->ListKeyrings(); }
  Result<std::string> ReadKeyring(uint64_t gen) override { return state_->ReadKeyring(gen); }
  Status WriteKeyring(uint64_t gen, std::string_view bytes) override {
    return state_->WriteKeyring(gen, bytes);
  }
  Status RemoveKeyring(uint64_t gen) override { return state_->RemoveKeyring(gen); }
  Status AppendTombstones(std::string_view bytes) override {
    return state_->AppendTombstones(bytes);
  }
  Result<std::string> ReadTombstones() override { return state_->ReadTombstones(); }
  Result<std::string> ReadRestoreLedger() override { return state_->ReadRestoreLedger(); }
  Status WriteRestoreLedger(std::string_view bytes) override {
    return state_->WriteRestoreLedger(bytes);
  }

  Result<std::string> SigningPublicKey() override {
    if (!sign_in_token_) return state_->SigningPublicKey();
    std::lock_guard<std::mutex> l(sign_mu_);
    auto pk = PublicKeyLocked();
    if (pk.ok() || pk.status().code() != Code::kNotFound) return pk;
    CV_RETURN_IF_ERROR(Writable());
    CV_RETURN_IF_ERROR(GenerateSigningKeyLocked());
    return PublicKeyLocked();
  }

  Result<std::string> ExistingSigningPublicKey() override {
    if (!sign_in_token_) return state_->ExistingSigningPublicKey();
    std::lock_guard<std::mutex> l(sign_mu_);
    return PublicKeyLocked();
  }

  Result<std::string> Sign(std::string_view message) override {
    if (!sign_in_token_) return state_->Sign(message);
    CV_RETURN_IF_ERROR(SigningPublicKey().status());  // creates the pair on first use
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CV_ASSIGN_OR_RETURN(auto hs, token_->FindByLabel(s, signing_label_, CKO_PRIVATE_KEY));
    if (hs.size() != 1) {
      return Status::KeyError("PKCS#11: expected one signing key '" + signing_label_ +
                              "' in the token, found " + std::to_string(hs.size()));
    }
    CK_MECHANISM mech = {CKM_EDDSA, nullptr, 0};
    CK_RV rv = s.Check(token_->f()->C_SignInit(s.get(), &mech, hs[0]));
    if (rv != CKR_OK) return TokenError("C_SignInit", rv, "signing a receipt");
    std::string sig(64, '\0');
    CK_ULONG n = sig.size();
    rv = s.Check(token_->f()->C_Sign(
        s.get(), reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(message.data())), message.size(),
        reinterpret_cast<CK_BYTE_PTR>(sig.data()), &n));
    if (rv != CKR_OK) return TokenError("C_Sign", rv, "signing a receipt");
    if (n != 64) return Status::KeyError("PKCS#11 C_Sign: not a 64-byte Ed25519 signature");
    return sig;
  }

 private:
  Status Writable() const {
    if (writer_.load()) return Status::OK();
    return Status::FailedPrecondition(
        "PKCS#11 key provider: not open for writing (no writer lock on the state directory; a "
        "read-only open changes no key)");
  }

  std::string SealWhat(uint32_t gen) const {
    return "sealing the keyring under KEK generation " + std::to_string(gen);
  }
  std::string OpenWhat(uint32_t gen) const {
    return "opening the keyring under KEK generation " + std::to_string(gen);
  }

  // The generation is bound into the AAD: a keyring sealed under one
  // generation never opens as another's, whatever the labels say.
  static std::string BoundAad(uint32_t gen, std::string_view aad) {
    std::string a = "callvault-pkcs11-kek-gen:" + std::to_string(gen) + ":";
    a.append(aad);
    return a;
  }

  Result<CK_OBJECT_HANDLE> Kek(Token::Lease& s, uint32_t gen) {
    CV_ASSIGN_OR_RETURN(auto hs,
                        token_->FindByLabel(s, kek_prefix_ + std::to_string(gen), CKO_SECRET_KEY));
    if (hs.empty()) {
      return Status::KeyError("KEK generation " + std::to_string(gen) +
                              " does not exist in the token (destroyed, or wrong token or "
                              "object prefix)");
    }
    if (hs.size() > 1) {
      return Status::KeyError("KEK generation " + std::to_string(gen) +
                              " exists more than once in the token (objects made by hand?)");
    }
    return hs[0];
  }

  Result<std::string> PublicKeyLocked() {
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CV_ASSIGN_OR_RETURN(auto hs, token_->FindByLabel(s, signing_label_, CKO_PUBLIC_KEY));
    if (hs.empty()) return Status::NotFound("no signing key yet (no receipt has been signed)");
    if (hs.size() > 1) {
      return Status::KeyError("PKCS#11: more than one signing public key '" + signing_label_ +
                              "' in the token");
    }
    CV_ASSIGN_OR_RETURN(std::string point, token_->Attribute(s, hs[0], CKA_EC_POINT));
    // DER OCTET STRING (04 20 <32 bytes>), or the raw 32 bytes.
    if (point.size() == 34 && point[0] == 0x04 && point[1] == 0x20) return point.substr(2);
    if (point.size() == 32) return point;
    return Status::KeyError("PKCS#11: the signing public key is not an Ed25519 point");
  }

  Status GenerateSigningKeyLocked() {
    if (!token_->HasMechanism(CKM_EC_EDWARDS_KEY_PAIR_GEN) || !token_->HasMechanism(CKM_EDDSA)) {
      return Status::NotSupported(
          "PKCS#11: the token does not offer CKM_EDDSA (Ed25519); open with the signing key "
          "in the state directory (signing_key_in_token = false)");
    }
    CV_ASSIGN_OR_RETURN(Token::Lease s, token_->Session());
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_KEY_TYPE type = CKK_EC_EDWARDS;
    CK_ATTRIBUTE pub[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_EC_PARAMS, const_cast<unsigned char*>(kEd25519Oid), sizeof kEd25519Oid},
        {CKA_LABEL, const_cast<char*>(signing_label_.data()), signing_label_.size()},
    };
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_LABEL, const_cast<char*>(signing_label_.data()), signing_label_.size()},
    };
    CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, nullptr, 0};
    CK_OBJECT_HANDLE hp, hk;
    CK_RV rv = s.Check(token_->f()->C_GenerateKeyPair(s.get(), &mech, pub, sizeof pub / sizeof pub[0],
                                                      priv, sizeof priv / sizeof priv[0], &hp, &hk));
    if (rv != CKR_OK) return TokenError("C_GenerateKeyPair", rv, "creating the signing key");
    return Status::OK();
  }

  const std::shared_ptr<Token> token_;
  const std::shared_ptr<KeyProvider> state_;  // a FileKeyProvider that never holds a KEK
  const std::string module_path_;
  const std::string kek_prefix_;
  const std::string signing_label_;
  const bool sign_in_token_;
  std::atomic<bool> writer_{false};
  std::mutex sign_mu_;  // one creator of the signing key pair
};

Status CheckOptions(const Pkcs11KeyProviderOptions& o) {
  if (o.token_label.empty()) return Status::InvalidArgument("PKCS#11: token label is empty");
  if (o.object_prefix.empty() || o.object_prefix.size() > 64) {
    return Status::InvalidArgument("PKCS#11: object prefix must be 1-64 characters");
  }
  return Status::OK();
}

}  // namespace

Result<std::shared_ptr<KeyProvider>> NewPkcs11KeyProvider(const Pkcs11KeyProviderOptions& o) {
  CV_RETURN_IF_ERROR(CheckOptions(o));
  if (o.state_dir.empty()) return Status::InvalidArgument("PKCS#11: state directory is empty");
  FileKeyProviderOptions fo;
  fo.create_if_missing = o.create_if_missing;
  CV_ASSIGN_OR_RETURN(auto state, NewFileKeyProvider(o.state_dir, fo));
  CV_ASSIGN_OR_RETURN(auto token, Token::Open(o));
  return std::shared_ptr<KeyProvider>(
      std::make_shared<Pkcs11KeyProvider>(std::move(token), std::move(state), o));
}

Result<std::vector<std::string>> ListPkcs11Objects(const Pkcs11KeyProviderOptions& o) {
  CV_RETURN_IF_ERROR(CheckOptions(o));
  CV_ASSIGN_OR_RETURN(auto token, Token::Open(o));
  return token->Labels(o.object_prefix + "-");
}

}  // namespace callvault
