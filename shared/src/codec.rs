//! Framing for the channel: a 4-byte big-endian length, then one JSON message.
//! Readable with `socat`; bounded by `MAX_FRAME_BYTES`, checked before allocating.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proto::MAX_FRAME_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("the peer closed the channel in the middle of a frame")]
    Truncated,
    #[error("undecodable frame: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("channel I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one message as a frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: MAX_FRAME_BYTES,
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` when the peer closed the channel between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ToControl, ToGateway};

    #[tokio::test]
    async fn frames_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let hello = ToControl::Hello {
            proto: 1,
            gateway_id: "gw-1".into(),
            have: None,
        };
        write_frame(&mut a, &hello)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got: Option<ToControl> = read_frame(&mut b).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, Some(hello));
        drop(a);
        let end: Option<ToControl> = read_frame(&mut b).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(end, None, "a clean close between frames");
    }

    #[tokio::test]
    async fn bad_frames_are_errors_not_panics() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&u32::MAX.to_be_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = read_frame::<_, ToGateway>(&mut b)
            .await
            .expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&10u32.to_be_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        a.write_all(b"{\"ty")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(a);
        assert!(matches!(
            read_frame::<_, ToGateway>(&mut b).await,
            Err(FrameError::Truncated)
        ));

        // A type from a newer peer decodes (evolution rule 2); a body that is not a
        // message at all is an error.
        let (mut a, mut b) = tokio::io::duplex(1024);
        for body in [
            &br#"{"type":"teleport","to":"mars"}"#[..],
            br#"{"to":"mars"}"#,
        ] {
            a.write_all(&(body.len() as u32).to_be_bytes())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            a.write_all(body).await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(matches!(
            read_frame::<_, ToGateway>(&mut b).await,
            Ok(Some(ToGateway::Unknown))
        ));
        assert!(matches!(
            read_frame::<_, ToGateway>(&mut b).await,
            Err(FrameError::Decode(_))
        ));
    }
}
