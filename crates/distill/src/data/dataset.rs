//! A labelled data set in memory: image pixels as bytes, or tabular features as f32.
//!
//! Images stay bytes end to end (a quarter of f32's size on the GPU); tabular features are
//! never quantised. Both live in [`Dataset::images`] as a [`Storage`]; everything that
//! only needs the examples' values in a common form uses [`Dataset::example_f32`] /
//! [`Dataset::to_f32`] and [`Dataset::from_f32_like`].

/// The values of a data set's examples, one example after another.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// Pixels, `channels * height * width` bytes per example: channel planes of
    /// `height x width`, row-major.
    Pixels(Vec<u8>),
    /// Feature values, `width` per example (`channels = height = 1`), standardised by the
    /// loader where it says so.
    Features(Vec<f32>),
}

impl Storage {
    /// Number of values held.
    pub fn len(&self) -> usize {
        match self {
            Storage::Pixels(pixels) => pixels.len(),
            Storage::Features(features) => features.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The raw bytes of the values (f32 features little-endian on every supported target), for
/// content keys such as the teacher-logit cache's.
impl AsRef<[u8]> for Storage {
    fn as_ref(&self) -> &[u8] {
        match self {
            Storage::Pixels(pixels) => pixels,
            Storage::Features(features) => bytemuck::cast_slice(features),
        }
    }
}

/// A labelled data set held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The examples' values: pixels for image data sets, features for tabular ones (the
    /// field keeps its name from the image-only days).
    pub images: Storage,
    /// One label per example, each `< classes`.
    pub labels: Vec<u8>,
    pub n: usize,
    /// Colour planes per image (1 for grey images and for features).
    pub channels: usize,
    /// Image height (1 for features).
    pub height: usize,
    /// Image width, or the number of features.
    pub width: usize,
    pub classes: usize,
    /// `classes` names, in label order.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// A data set of images; `pixels` holds `n * channels * height * width` bytes.
    pub fn from_pixels(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        [channels, height, width]: [usize; 3],
        class_names: Vec<String>,
    ) -> Dataset {
        let n = labels.len();
        assert_eq!(
            pixels.len(),
            n * channels * height * width,
            "pixel count of {n} images of {channels}x{height}x{width}"
        );
        Dataset {
            images: Storage::Pixels(pixels),
            labels,
            n,
            channels,
            height,
            width,
            classes: class_names.len(),
            class_names,
        }
    }

    /// A tabular data set; `features` holds `n * width` values.
    pub fn from_features(
        features: Vec<f32>,
        labels: Vec<u8>,
        width: usize,
        class_names: Vec<String>,
    ) -> Dataset {
        let n = labels.len();
        assert_eq!(
            features.len(),
            n * width,
            "feature count of {n} rows of {width}"
        );
        Dataset {
            images: Storage::Features(features),
            labels,
            n,
            channels: 1,
            height: 1,
            width,
            classes: class_names.len(),
            class_names,
        }
    }

    /// A data set shaped like `template` (same storage kind, shape and classes) holding the
    /// given f32 rows, `n * values_per_example()` values in the range of
    /// [`Dataset::example_f32`]: pixels are scaled back to bytes (rounded, clamped to
    /// 0..=255), features are kept as they are.
    pub fn from_f32_like(template: &Dataset, values: &[f32], labels: Vec<u8>) -> Dataset {
        let per_example = template.values_per_example();
        assert_eq!(
            values.len(),
            labels.len() * per_example,
            "{} labels need {} values of {per_example} each",
            labels.len(),
            labels.len() * per_example
        );
        assert!(
            labels.iter().all(|&l| (l as usize) < template.classes),
            "labels must be below {}",
            template.classes
        );
        let images = match template.images {
            Storage::Pixels(_) => Storage::Pixels(
                values
                    .iter()
                    .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                    .collect(),
            ),
            Storage::Features(_) => Storage::Features(values.to_vec()),
        };
        Dataset {
            images,
            n: labels.len(),
            labels,
            ..template.empty_like()
        }
    }

    /// No examples, the shape and classes of `self`.
    pub fn empty_like(&self) -> Dataset {
        self.select(&[])
    }

    /// True for tabular features, false for image pixels.
    pub fn is_tabular(&self) -> bool {
        matches!(self.images, Storage::Features(_))
    }

    /// `[channels, height, width]` of one example (`[1, 1, features]` for tabular data).
    pub fn example_shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// An image's size as people write it: "28x28" for one channel, "3x32x32" for more.
    pub fn image_size_text(&self) -> String {
        if self.channels == 1 {
            format!("{}x{}", self.height, self.width)
        } else {
            format!("{}x{}x{}", self.channels, self.height, self.width)
        }
    }

    /// Number of values in one example (pixels over all channels, or features).
    pub fn values_per_example(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of pixels in one image, all channels.
    pub fn pixels_per_image(&self) -> usize {
        self.values_per_example()
    }

    /// The pixels of image `index` (all channel planes); empty for tabular data, which has
    /// no picture.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.values_per_example();
        match &self.images {
            Storage::Pixels(pixels) => &pixels[index * size..(index + 1) * size],
            Storage::Features(_) => &[],
        }
    }

    /// Example `index` as f32: pixels scaled to [0, 1], features as stored.
    pub fn example_f32(&self, index: usize) -> Vec<f32> {
        let size = self.values_per_example();
        let range = index * size..(index + 1) * size;
        match &self.images {
            Storage::Pixels(pixels) => pixels[range].iter().map(|&p| pixel_to_f32(p)).collect(),
            Storage::Features(features) => features[range].to_vec(),
        }
    }

    /// Every example as f32, `n * values_per_example()` values (see [`Dataset::example_f32`]).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.images {
            Storage::Pixels(pixels) => pixels.iter().map(|&p| pixel_to_f32(p)).collect(),
            Storage::Features(features) => features.clone(),
        }
    }

    /// A new data set made of the given examples, in the given order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let size = self.values_per_example();
        fn gather<T: Copy>(values: &[T], size: usize, indices: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * size);
            for &index in indices {
                out.extend_from_slice(&values[index * size..(index + 1) * size]);
            }
            out
        }
        let images = match &self.images {
            Storage::Pixels(pixels) => Storage::Pixels(gather(pixels, size, indices)),
            Storage::Features(features) => Storage::Features(gather(features, size, indices)),
        };
        Dataset {
            images,
            labels: indices.iter().map(|&index| self.labels[index]).collect(),
            n: indices.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes,
            class_names: self.class_names.clone(),
        }
    }

    /// This data set followed by `other`'s examples (same storage, shape and classes).
    pub fn concat(&self, other: &Dataset) -> Dataset {
        assert_eq!(
            (self.example_shape(), self.classes, self.is_tabular()),
            (other.example_shape(), other.classes, other.is_tabular()),
            "concatenated data sets must have the same storage, shape and classes"
        );
        let images = match (&self.images, &other.images) {
            (Storage::Pixels(a), Storage::Pixels(b)) => Storage::Pixels([a.as_slice(), b].concat()),
            (Storage::Features(a), Storage::Features(b)) => {
                Storage::Features([a.as_slice(), b].concat())
            }
            _ => unreachable!("storage kinds checked above"),
        };
        Dataset {
            images,
            labels: [self.labels.as_slice(), &other.labels].concat(),
            n: self.n + other.n,
            ..self.empty_like()
        }
    }

    /// How many examples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }
}

fn pixel_to_f32(pixel: u8) -> f32 {
    f32::from(pixel) / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|c| format!("c{c}")).collect()
    }

    #[test]
    fn pixels_select_convert_and_come_back() {
        // Three 2-channel 1x2 images: values 10 * image + position.
        let pixels: Vec<u8> = (0..3u8)
            .flat_map(|i| (0..4u8).map(move |p| 10 * i + p))
            .collect();
        let data = Dataset::from_pixels(pixels, vec![0, 1, 2], [2, 1, 2], names(3));
        assert_eq!((data.n, data.values_per_example()), (3, 4));
        assert_eq!(data.image(2), &[20, 21, 22, 23]);
        let picked = data.select(&[2, 0]);
        assert_eq!(picked.labels, vec![2, 0]);
        assert_eq!(picked.image(1), &[0, 1, 2, 3]);
        assert_eq!(picked.example_f32(0)[3], 23.0 / 255.0);
        let back = Dataset::from_f32_like(&data, &data.to_f32(), data.labels.clone());
        assert_eq!(back, data, "bytes survive the round trip through f32");
        // Out-of-range values are clamped, others rounded to the nearest byte.
        let made = Dataset::from_f32_like(&data, &[-0.5, 0.5, 1.7, 0.0021], vec![1]);
        assert_eq!(made.image(0), &[0, 128, 255, 1]);
        assert_eq!((made.channels, made.classes), (2, 3));
        assert_eq!(data.empty_like().n, 0);
        assert!(!data.is_tabular());
    }

    #[test]
    fn features_keep_their_values_and_bytes() {
        let data = Dataset::from_features(vec![1.5, -2.0, 0.25, 7.0], vec![1, 0], 2, names(2));
        assert!(data.is_tabular());
        assert_eq!(data.example_shape(), [1, 1, 2]);
        assert_eq!(data.example_f32(1), vec![0.25, 7.0]);
        assert!(data.image(0).is_empty(), "tabular data has no picture");
        assert_eq!(data.select(&[1]).to_f32(), vec![0.25, 7.0]);
        let made = Dataset::from_f32_like(&data, &[300.0, -1e-3], vec![0]);
        assert_eq!(
            made.to_f32(),
            vec![300.0, -1e-3],
            "features are not clamped"
        );
        let bytes: &[u8] = data.images.as_ref();
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &1.5f32.to_le_bytes());
        assert_eq!(data.class_counts(), vec![1, 1]);
    }
}
