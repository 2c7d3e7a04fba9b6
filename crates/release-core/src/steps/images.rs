//! Removing an image: deregistering it and deleting its snapshots (the one way bake and gc remove one).

use std::time::Duration;
use crate::model::error::Result;
use crate::ports::{Cloud, Image};

/// How long a snapshot may stay in use after its image was deregistered before giving up.
pub const SNAPSHOT_IN_USE_TIMEOUT: Duration = Duration::from_secs(300);

/// Deregisters an image, then deletes its snapshots, waiting (through the clock, backing off from 2 s to 30 s) while
/// EC2 still reports a snapshot in use by the image just deregistered. Safe to call again after a crash: a re-run finds what is left.
pub async fn remove_image(cloud: &Cloud, image: &Image) -> Result<()> {
    cloud.images.deregister(&image.id).await.or_else(|e| if e.is(crate::model::error::Cause::Missing) { Ok(()) } else { Err(e) })?;
    for snap in &image.snapshots {
        let start = cloud.clock.now();
        let mut wait = Duration::from_secs(2);
        loop {
            match cloud.images.delete_snapshot(snap).await {
                Ok(()) => break,
                Err(e) if e.is(crate::model::error::Cause::Missing) => break,
                Err(e) if e.is(crate::model::error::Cause::InUse) && cloud.clock.now().since(start) < SNAPSHOT_IN_USE_TIMEOUT => {
                    cloud.clock.sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.context(format!("deleting snapshot {snap} of {}", image.id))),
            }
        }
    }
    Ok(())
}

/// Runs Packer for `request` (build instance, AMI); the AMI it made.
pub async fn bake(baker: &dyn crate::ports::Baker, request: &crate::ports::BakeRequest, progress: &crate::ports::ProgressFn) -> Result<crate::model::ids::AmiId> {
    baker.bake(request, progress).await
}

/// Tags an image and its snapshots.
pub async fn tag(cloud: &Cloud, ami: &crate::model::ids::AmiId, snapshots: &[String], tags: &[(String, String)]) -> Result<()> {
    cloud.images.tag(ami, snapshots, tags).await
}
