import Hummingbird

/// A request context whose `requestDecoder` is the service's ``BodyDecoder``: the chassis sets
/// it on every request (``BodyDecoderMiddleware``), so `request.decode(as:context:)` applies
/// the service's body limit (413), body timeout (408) and field-naming 400s.
package protocol BodyDecodingRequestContext: RequestContext where Decoder == BodyDecoder {
    var bodyDecoder: BodyDecoder { get set }
}

extension BodyDecodingRequestContext {
    package var requestDecoder: BodyDecoder { bodyDecoder }
    package var maxUploadSize: Int { bodyDecoder.limit }
}

/// Puts the service's body rules on the request context.
package struct BodyDecoderMiddleware<Context: BodyDecodingRequestContext>: RouterMiddleware {
    let decoder: BodyDecoder

    package init(_ decoder: BodyDecoder) {
        self.decoder = decoder
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.bodyDecoder = decoder
        return try await next(request, context)
    }
}
