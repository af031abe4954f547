import Foundation
import JWTKit
import SharedAuth

/// Keys of every supported kind, and tokens signed with them.
struct TestKeys {
    let ed = try! DevelopmentSigningKey(kid: "ed-1")
    let es = ES256PrivateKey()
    let rsa = try! Insecure.RSA.PrivateKey(pem: rsaPEM)

    /// A JWKS document with the chosen keys.
    func jwks(ed: Bool = true, es: Bool = true, rsa: Bool = true, extra: [[String: String]] = []) throws -> Data {
        var keys: [[String: String]] = extra
        if ed { keys.append(self.ed.jwk) }
        if es, let parameters = self.es.publicKey.parameters {
            keys.append(["kty": "EC", "crv": "P-256", "kid": "es-1", "x": parameters.x, "y": parameters.y])
        }
        if rsa {
            let (n, e) = try self.rsa.publicKey.getKeyPrimitives()
            keys.append(["kty": "RSA", "kid": "rs-1", "n": n.base64URLEncodedString(), "e": e.base64URLEncodedString()])
        }
        // An entry of an unsupported kind must not spoil the others.
        keys.append(["kty": "oct", "kid": "sym-1", "k": "c2VjcmV0"])
        return try JSONSerialization.data(withJSONObject: ["keys": keys])
    }

    static func claims(
        sub: String? = "user-1", exp: Double = Date().timeIntervalSince1970 + 600, nbf: Double? = nil,
        iss: String? = "https://auth.example", aud: String? = "mana", email: String? = "a@example.com", role: String? = nil
    ) -> ManaClaims {
        ManaClaims(sub: sub, exp: exp, nbf: nbf, iat: nil, iss: iss, aud: aud.map { .one($0) }, email: email, role: role, sid: "s-1")
    }

    func edToken(_ claims: ManaClaims = claims(), kid: String = "ed-1") async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(eddsa: ed.privateKey, kid: JWKIdentifier(string: kid))
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }

    func esToken(_ claims: ManaClaims = claims()) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: es, kid: "es-1")
        return try await keys.sign(claims, kid: "es-1")
    }

    func rsToken(_ claims: ManaClaims = claims()) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rs-1")
        return try await keys.sign(claims, kid: "rs-1")
    }

    /// HS256 signed with the Ed25519 public key bytes as the secret, naming the Ed25519 kid.
    func hmacWithPublicKeyToken() async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: ed.privateKey.publicKey.rawRepresentation), digestAlgorithm: .sha256, kid: "ed-1")
        return try await keys.sign(Self.claims(), kid: "ed-1")
    }

    /// `alg: none` with an empty signature.
    func noneToken() throws -> String {
        let header = try JSONSerialization.data(withJSONObject: ["alg": "none", "kid": "ed-1", "typ": "JWT"])
        let payload = try JSONEncoder().encode(Self.claims())
        return header.base64URLEncodedString() + "." + payload.base64URLEncodedString() + "."
    }
}

let rsaPEM = """
-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEApaW92g3oVWskDW7Al1psTKG++NHljEycnRN2ff4TBi71YlN9
QUQeNqRyt+r4bOwcqrruAuN0K2/mwwNJlXoLLpOmChHm63jfcElw4vS1CNACx55F
skPmusOKkvIHWrdhkHOviBDuUUg+cyPjA9GXESXChESWZ0wtXtIKzhGJ6lV5lksy
peC+TWIG0WL3YxrUDSHlN9f5nr63avCuzafFHeTySq20b4GXfCehcaJ4GacaP2K2
d9LI/AcorWME5qLWozn1P3mRdKZjAAOIYMdPK9lY9k1Ie38veu3dbbhBmVCXGOOx
6cYFob8JhDRJ+aO/eZ1LJvWbyj2A/Gl876Xn0QIDAQABAoIBAAcZkIadG/01R2lP
+u9Bz+yE7kOJ85XM3tWYtPZ3gmc8cgYR4AeBHO5opAYgCx/YCu6CbpsvFpaaCEEJ
jgjbH0mSyIYb+FLVbnZIn48KwAutpsDZltEqOeR9Zx4fQ5Nu0r63RqnFWAGh4BNd
UWijfh8dCDZVHkE1MaijxhTJCalCiPh93NnzkMSTkrk+90pg5X9Pr7fWwydYmGYb
U4Jdh2CIwqhI1oM6Fjb84SC48jtxcZDKK4V510HLZDDCtWh9PJSUyfct0s62g+W+
QJgwj7yImo1cbIrLUFPdmoCLbohCMVSkHnXVxW960/8qGXHy02QKbWQnRHBggvVW
KtoJ0gECgYEA0kT6t1n5+5SVXhHeDXF0JAvYPzlCfUEs35fzsD3R6lRgK6kbpabN
niqLuo2t+J47YjprtuTtVqdCfkBJgZcts+NfG5U/K15jVEKcfGFfzQt/245TyMpx
oxoDFQWat/KuacXPx0PHC/GwJdOJ/YhnJ+qTqSO//BLNaB4RIVy9yeECgYEAyaxf
wtra8EbZTLe1trG/fNvnxBzME6QKWP2S2zq2El/J7i4OefQevp7iKC4Kpefm159I
FKiNtRNdaRFtKPoYiRyBlCGikWsrwyo0b5GSWUn3sYn4aftAHhaOhSKVvRRiyLnW
e2BBkiKAIKkXmxaINCRVmcHldjDtGsvVSZn0O/ECgYB7Q4rCf5GnZRQnIExPDypp
kzQC5DtRGCsJLJfjwmnTeAEkty8I7f7t8L0W8MWC0Ke5TswkXJGx0b2OK3ur54cY
RHtVvSlZ8CxEkgQQejjiCBK9D/OX6u2xEqep5C4uFasfQKIsi1QdcWK02gyzvwnS
AZbseZOrXw5hMfcS2r47oQKBgCJwxYnJRkpyTvnDBc1FXaY9B79+C3vvL7Uy2LmH
tUA+C4YZZ298OSPkjkq+UiMzD0ETeoPMpSafP/yJdVLiIv6HV7msZM7gtoCF3J6R
BaUp9JrlLP8sYS7CO2SRG3FG4ffVhMNdFNWX/rmVJurdVjVRXyz65+zfPh6tYKdJ
G2SBAoGAHz/vXlhtBT2+NolQz/sn7IX1YyHDmWePF+GE56ljIn9OWJpFwRr9WWsL
hS6hfEp3mMGrpbGV42HIPtWJ9tQg7rHm6IeN0qNX/xhzmxRfeuFl8D1ts+TzLxs7
xrKSsSNhLMSdDV8jVeQDS+XjK4NNRiGDCj9Rg4e1c9OBbE7QiLI=
-----END RSA PRIVATE KEY-----
"""
