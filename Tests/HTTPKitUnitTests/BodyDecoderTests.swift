import Foundation
import HTTPKit
import NIOCore
import Testing

/// The body rules' 400s, without a server: each names the problem and, where there is one,
/// the field.
@Suite struct BodyDecoderTests {
    struct Push: Decodable {
        let clientId: String?
        let changes: [Int]
        let nested: Nested?
    }

    struct Nested: Decodable {
        let amount: Int
    }

    static func failure(_ json: [UInt8]) -> APIError? {
        do {
            _ = try BodyDecoder.decode(Push.self, from: Data(json))
            return nil
        } catch {
            return error as? APIError
        }
    }

    @Test(arguments: [
        (#"{"changes": "x"}"#, "changes must be an array", "changes"),
        (#"{"clientId": "a"}"#, "changes is required", "changes"),
        (#"{"changes": [], "nested": {"amount": "1"}}"#, "nested.amount must be a whole number", "nested.amount"),
        (#"{"changes": [1, "2"]}"#, "changes[1] must be a whole number", "changes[1]"),
        (#"[1]"#, "request body must be a JSON object", nil),
        (#"{"changes": [}"#, "request body is not valid JSON", nil),
    ] as [(String, String, String?)])
    func malformedBodiesAreA400NamingTheField(body: String, message: String, field: String?) throws {
        let error = try #require(Self.failure(Array(body.utf8)))
        #expect(error.status == .badRequest)
        #expect(error.message == message)
        #expect(error.details?["field"] == field.map(JSONValue.string))
    }

    /// The decoder skips members the type does not read without looking inside them; bytes
    /// that are not UTF-8 in such a member still make the body a 400.
    @Test func bytesThatAreNotUTF8AreRefusedEvenInAMemberNobodyReads() throws {
        let body = Array(#"{"changes": [], "appId": ""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)
        let error = try #require(Self.failure(body))
        #expect(error.status == .badRequest && error.message.contains("UTF-8"))
        #expect(Self.failure(Array(#"{"changes": [], "appId": "ümlaut ✓"}"#.utf8)) == nil)
    }

    @Test func anEmptyBodyIsA400() throws {
        #expect(Self.failure([])?.message == "request body is empty; a JSON object is expected")
    }

    /// A body read as a JSON value (the push's) has the same rules as a typed one.
    @Test func aBodyReadAsAJSONValueHasTheSame400s() throws {
        func failure(_ bytes: [UInt8]) -> String? {
            do {
                _ = try BodyDecoder.json(from: ByteBuffer(bytes: bytes))
                return nil
            } catch {
                return (error as? APIError)?.message ?? "\(error)"
            }
        }
        #expect(failure([]) == "request body is empty; a JSON object is expected")
        #expect(failure(Array(#"{"a": ""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)) == "request body is not valid JSON: it is not UTF-8")
        #expect(failure(Array(#"{"changes": [}"#.utf8)) == "request body is not valid JSON")
        #expect(failure(Array(#"{"a": "ümlaut ✓", "b": [1, null]}"#.utf8)) == nil)
        #expect(try BodyDecoder.json(from: ByteBuffer(string: #"{"a": [1, true]}"#)) == ["a": [1, true]])
    }
}
