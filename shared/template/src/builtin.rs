//! The values every dialog has (`chatId`, `username`, `createdAt`...), by name: what both a
//! template's names ([`crate::name`]) and a dialog's values ([`crate::value`]) speak of.

/// A value every dialog has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Builtin {
    /// Telegram chat id (signed 64-bit).
    ChatId,
    /// Telegram username.
    Username,
    /// The person's name.
    Name,
    /// Key of the dialog's current step.
    StepKey,
    /// Id (UUID) of the dialog's current step.
    StepId,
    /// `auto`, `manual` or `blocked`.
    Status,
    /// When the dialog started.
    CreatedAt,
}

impl Builtin {
    /// Every built-in, in documentation order.
    pub const ALL: [Builtin; 7] = [
        Builtin::ChatId,
        Builtin::Username,
        Builtin::Name,
        Builtin::StepKey,
        Builtin::StepId,
        Builtin::Status,
        Builtin::CreatedAt,
    ];

    /// The canonical name (`chatId`).
    pub fn as_str(self) -> &'static str {
        match self {
            Builtin::ChatId => "chatId",
            Builtin::Username => "username",
            Builtin::Name => "name",
            Builtin::StepKey => "stepKey",
            Builtin::StepId => "stepId",
            Builtin::Status => "status",
            Builtin::CreatedAt => "createdAt",
        }
    }

    /// The built-in a name means, ignoring case and underscores (`chat_id`, `ChatID`).
    pub fn from_name(name: &str) -> Option<Builtin> {
        if name.len() > 16 {
            return None;
        }
        let mut folded = [0u8; 16];
        let mut n = 0;
        for b in name.bytes().filter(|b| *b != b'_') {
            folded[n] = b.to_ascii_lowercase();
            n += 1;
        }
        Some(match &folded[..n] {
            b"chatid" => Builtin::ChatId,
            b"username" => Builtin::Username,
            b"name" => Builtin::Name,
            b"stepkey" => Builtin::StepKey,
            b"stepid" => Builtin::StepId,
            b"status" => Builtin::Status,
            b"createdat" => Builtin::CreatedAt,
            _ => return None,
        })
    }
}
