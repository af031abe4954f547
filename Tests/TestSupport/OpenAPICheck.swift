import Foundation
import HTTPKit
import HTTPTypes
import Testing

/// Compares a router's routes with an OpenAPI document's operations.
package enum OpenAPICheck {
    /// `method path` pairs, with `:name` parameters written `{name}` as OpenAPI does.
    package static func normalized(_ routes: [(method: HTTPRequest.Method, path: String)]) -> Set<String> {
        Set(routes.map { route in
            let segments = route.path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            return "\(route.method.rawValue.lowercased()) /\(segments.joined(separator: "/"))"
        })
    }

    /// The document's operations as `method path`, and the document.
    package static func operations(in url: URL) throws -> (operations: Set<String>, document: JSONValue) {
        let document = try JSONDecoder().decode(JSONValue.self, from: try Data(contentsOf: url))
        var operations = Set<String>()
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            for method in (item.objectValue ?? [:]).keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                operations.insert("\(method) \(path)")
            }
        }
        return (operations, document)
    }

    /// Every route in `routes` is documented in the document at `url` and every documented
    /// operation is a route; the document is OpenAPI 3.1, every operation lists a response, and
    /// `docs/openapi/<docsName>.json` (a link to it) reads the same.
    package static func verify(
        routes: [(method: HTTPRequest.Method, path: String)], besides extra: Set<String> = [], document url: URL, docsName: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi/\(docsName).json")
        #expect(try Data(contentsOf: docs) == (try Data(contentsOf: url)), "docs/openapi/\(docsName).json", sourceLocation: sourceLocation)
        let expected = normalized(routes).union(extra)
        let (operations, document) = try operations(in: url)
        #expect(expected.subtracting(operations).sorted() == [], "routes missing from the document", sourceLocation: sourceLocation)
        #expect(
            operations.subtracting(expected).sorted() == [], "documented operations the router does not have", sourceLocation: sourceLocation)
        #expect(document["openapi"]?.stringValue?.hasPrefix("3.1") == true, sourceLocation: sourceLocation)
        #expect(operationsWithoutResponses(document) == [], sourceLocation: sourceLocation)
    }

    /// Operations without any documented response.
    package static func operationsWithoutResponses(_ document: JSONValue) -> [String] {
        var result: [String] = []
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            for (method, operation) in item.objectValue ?? [:] where ["get", "post", "put", "patch", "delete"].contains(method) {
                if (operation["responses"]?.objectValue ?? [:]).isEmpty { result.append("\(method) \(path)") }
            }
        }
        return result.sorted()
    }
}
