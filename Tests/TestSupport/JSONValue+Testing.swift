import HTTPKit

extension JSONValue {
    /// An array of served changes without their server-assigned `eventId`s, to compare with
    /// what was pushed.
    package var withoutEventIDs: JSONValue {
        guard case .array(let changes) = self else { return self }
        return .array(changes.map { change in
            guard var members = change.objectValue else { return change }
            members["eventId"] = nil
            return .object(members)
        })
    }
}
