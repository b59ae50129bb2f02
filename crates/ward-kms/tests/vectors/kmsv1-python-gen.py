# Independent KMS v1 vectors (Python `cryptography`), laid out as kube-apiserver's envelope
# transformer writes them, with kube's integration-test plugin (base64 "encryption" of the DEK).
import base64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives import padding

dek = bytes(range(0x40, 0x60))  # 32 bytes
plaintext = b"k8s\x00" + b"kms-v1-vector: pandas are the best"
aad = b"/registry/secrets/default/kms-v1-vector"
name = b"legacy"
enc_dek = base64.b64encode(dek)

def value(data):
    return b"k8s:enc:kms:v1:" + name + b":" + len(enc_dek).to_bytes(2, "big") + enc_dek + data

nonce = bytes(range(0xa0, 0xac))
gcm = nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)
iv = bytes(range(0xb0, 0xc0))
padder = padding.PKCS7(128).padder()
padded = padder.update(plaintext) + padder.finalize()
enc = Cipher(algorithms.AES(dek), modes.CBC(iv)).encryptor()
cbc = iv + enc.update(padded) + enc.finalize()

def hexlines(b):
    h = b.hex()
    return "\n".join(h[i:i+64] for i in range(0, len(h), 64))

for mode, data in (("gcm", gcm), ("cbc", cbc)):
    v = value(data)
    with open(f"kmsv1-{mode}-python.txt", "w") as f:
        f.write(f"# KMS v1 value, DEK data in the {'aesgcm (kube-apiserver >= 1.25)' if mode=='gcm' else 'aescbc (kube-apiserver < 1.25)'} layout.\n")
        f.write("# Produced by Python `cryptography` 48 (an implementation independent of Ward), laid out as\n")
        f.write("# kube-apiserver's envelope transformer writes it (encrypt/envelope/envelope.go): prefix,\n")
        f.write("# u16 BE length of the encrypted DEK, encrypted DEK, data. The plugin is kube's integration-test\n")
        f.write("# KMS v1 plugin (apiserver encrypt/envelope/testing/v1beta1, NewBase64Plugin): the\n")
        f.write("# encrypted DEK is the base64 encoding of the DEK.\n")
        f.write(f"provider_name: legacy\n")
        f.write(f"etcd_key: {aad.decode()}\n")
        f.write(f"dek_hex: {dek.hex()}\n")
        f.write(f"plaintext_hex: {plaintext.hex()}\n")
        f.write(f"etcd_value_len: {len(v)}\n")
        f.write(f"etcd_value_hex:\n{hexlines(v)}\n")
