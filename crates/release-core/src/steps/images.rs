//! Images: Packer's bake, tags, and removing an image (deregistering it, then deleting its snapshots): the one way
//! bake and gc change images.

use std::time::Duration;

use crate::engine::lock::Scope;
use crate::engine::runner::Op;
use crate::model::error::{Cause, Result};
use crate::model::ids::AmiId;
use crate::ports::{Image, Images};

/// How long a snapshot may stay in use after its image was deregistered before giving up.
pub const SNAPSHOT_IN_USE_TIMEOUT: Duration = Duration::from_secs(300);

/// Deregisters an image, then deletes its snapshots ([`delete_snapshots`]). Safe to call again after a crash: a
/// re-run finds what is left.
pub async fn remove_image<S: Scope>(op: &mut Op<'_, S>, image: &Image) -> Result<()> {
    let images = op.cloud().images.clone();
    deregister(&*images, &image.id).await?;
    delete_snapshots(op, &*images, &image.snapshots, Some(&image.id)).await
}

/// Deregisters an image (one gone already is fine).
pub async fn deregister(images: &dyn Images, ami: &AmiId) -> Result<()> {
    images.deregister(ami).await.or_else(|e| if e.is(Cause::Missing) { Ok(()) } else { Err(e) })
}

/// Deletes snapshots whose image (`of`, for messages) is deregistered, waiting (through [`Op::pause`], backing off
/// from 2 s to 30 s, at most [`SNAPSHOT_IN_USE_TIMEOUT`]) while EC2 still says one is in use by the image just
/// deregistered. One gone already is fine.
pub async fn delete_snapshots<S: Scope>(op: &mut Op<'_, S>, images: &dyn Images, ids: &[String], of: Option<&AmiId>) -> Result<()> {
    let cloud = op.cloud();
    for snap in ids {
        let start = cloud.clock.now();
        let mut wait = Duration::from_secs(2);
        loop {
            match images.delete_snapshot(snap).await {
                Ok(()) => break,
                Err(e) if e.is(Cause::Missing) => break,
                Err(e) if e.is(Cause::InUse) && cloud.clock.now().since(start) < SNAPSHOT_IN_USE_TIMEOUT => {
                    op.pause(wait).await?;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(match of {
                        Some(image) => e.context(format!("deleting snapshot {snap} of {image}")),
                        None => e.context(format!("deleting snapshot {snap}")),
                    })
                }
            }
        }
    }
    Ok(())
}

/// Runs Packer for `request` (build instance, AMI); the AMI it made.
pub async fn bake(baker: &dyn crate::ports::Baker, request: &crate::ports::BakeRequest, progress: &crate::ports::ProgressFn) -> Result<AmiId> {
    baker.bake(request, progress).await
}

/// Tags an image and its snapshots.
pub async fn tag(images: &dyn Images, ami: &AmiId, snapshots: &[String], tags: &[(String, String)]) -> Result<()> {
    images.tag(ami, snapshots, tags).await
}
