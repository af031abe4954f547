import Hummingbird
import NIOConcurrencyHelpers

/// A Hummingbird router that remembers which methods each path has, so a request with a
/// known path but another method answers 405 (with `Allow`) instead of 404.
///
/// Register routes on it (or on groups made from it) as on a `Router`, then call
/// ``buildResponder()`` once.
package final class ServiceRouter<Context: RequestContext>: RouterMethods, HTTPResponderBuilder {
    package let router: Router<Context>
    private let routes = NIOLockedValueBox<[String: (path: RouterPath, methods: Set<HTTPRequest.Method>)]>([:])

    package init(context: Context.Type = Context.self) {
        self.router = Router(context: context, options: .autoGenerateHeadEndpoints)
    }

    @discardableResult
    package func on<Responder: HTTPResponder>(
        _ path: RouterPath, method: HTTPRequest.Method, responder: Responder
    ) -> Self where Responder.Context == Context {
        router.on(path, method: method, responder: responder)
        routes.withLockedValue { routes in
            _ = routes[path.description, default: (path, [])].methods.insert(method)
        }
        return self
    }

    @discardableResult
    package func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }

    /// Every registered route as `(method, path)`, for documentation checks.
    package var registeredRoutes: [(method: HTTPRequest.Method, path: String)] {
        routes.withLockedValue { routes in
            routes.values.flatMap { entry in entry.methods.map { (method: $0, path: entry.path.description) } }
                .sorted { ($0.path, $0.method.rawValue) < ($1.path, $1.method.rawValue) }
        }
    }

    /// Adds the 405 answers for every path's missing methods, then builds the responder.
    package func buildResponder() -> RouterResponder<Context> {
        let entries = routes.withLockedValue { Array($0.values) }
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
        for entry in entries {
            var allowed = entry.methods
            if allowed.contains(.get) { allowed.insert(.head) }
            let allowHeader = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            for method in methods where !entry.methods.contains(method) {
                router.on(entry.path, method: method) { _, _ -> Response in
                    throw APIError(
                        .methodNotAllowed, message: "method \(method.rawValue) is not allowed here; use \(allowHeader)",
                        headers: [.allow: allowHeader])
                }
            }
        }
        return router.buildResponder()
    }
}
