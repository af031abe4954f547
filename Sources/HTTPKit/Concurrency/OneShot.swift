import NIOConcurrencyHelpers

/// A continuation resumed once, by whichever result comes first (a result that arrives
/// before the continuation is attached is kept for it).
package final class OneShot<T: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<T, any Error>)
        case resulted(Result<T, any Error>)
        case done
    }

    private let state = NIOLockedValueBox<State>(.empty)

    package init() {}

    package func attach(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLockedValue { state -> Result<T, any Error>? in
            switch state {
            case .empty:
                state = .waiting(continuation)
                return nil
            case .resulted(let result):
                state = .done
                return result
            case .waiting, .done:
                return nil
            }
        }
        if let early { continuation.resume(with: early) }
    }

    package func resume(with result: Result<T, any Error>) {
        let waiting = state.withLockedValue { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .empty:
                state = .resulted(result)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .resulted, .done:
                return nil
            }
        }
        waiting?.resume(with: result)
    }

    /// Waits for the result. When the waiting task is cancelled, `onCancel` runs and, if
    /// `resumingOnCancel`, the wait ends at once with `CancellationError` (otherwise it goes on
    /// until a result comes).
    package func value(resumingOnCancel: Bool, onCancel: @Sendable () -> Void) async throws -> T {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in attach(continuation) }
        } onCancel: {
            onCancel()
            if resumingOnCancel { resume(with: .failure(CancellationError())) }
        }
    }
}

extension OneShot {
    /// Resumes with what `body` returns or throws.
    package func resume(from body: () async throws -> T) async {
        resume(with: await Result(awaiting: body))
    }
}

extension Result where Failure == any Error {
    /// What `body` returns, or the error it throws.
    package init(awaiting body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
