/// An optional field of an answer that is written as `null` when absent, where Swift's
/// synthesized `Encodable` would leave the key out: the originals' clients read every field.
///
/// ```swift
/// struct Status: Encodable {
///     let active: Bool
///     @NullWhenAbsent var pausedAt: Date?   // "pausedAt": null
/// }
/// ```
@propertyWrapper
package struct NullWhenAbsent<Value: Encodable & Sendable>: Encodable, Sendable {
    package var wrappedValue: Value?

    package init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue {
            try container.encode(wrappedValue)
        } else {
            try container.encodeNil()
        }
    }
}

extension NullWhenAbsent: Equatable where Value: Equatable {}

/// Two answers written as one JSON object: the members of `base`, then those of `extra`
/// (an admin's or owner's view is the public view plus a few fields).
package struct Merged<Base: Encodable & Sendable, Extra: Encodable & Sendable>: Encodable, Sendable {
    package let base: Base
    package let extra: Extra

    package init(_ base: Base, _ extra: Extra) {
        self.base = base
        self.extra = extra
    }

    package func encode(to encoder: any Encoder) throws {
        try base.encode(to: encoder)
        try extra.encode(to: encoder)
    }
}
