//! Dense tensors on the wire: dtype + shape + little-endian bytes.

use serde::{Deserialize, Serialize};

use crate::MsgError;

/// Element type of a [`Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// IEEE 754 binary32, little-endian.
    F32,
    /// Unsigned byte (also used for boolean masks: 0 or 1).
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::U8 => 1,
        }
    }
}

/// A dense row-major tensor: `data` holds `shape.iter().product()` elements of `dtype`,
/// little-endian. In Python: `np.frombuffer(data, "<f4").reshape(shape)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<u32>,
    /// Little-endian element bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Tensor {
    /// An f32 tensor of `shape` from row-major `values`.
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Result<Self, MsgError> {
        let t = Tensor {
            dtype: DType::F32,
            shape: shape.iter().map(|&d| d as u32).collect(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        t.check("tensor")?;
        Ok(t)
    }

    /// A u8 tensor (e.g. a 0/1 mask) of `shape` from row-major `values`.
    pub fn from_u8(shape: &[usize], values: &[u8]) -> Result<Self, MsgError> {
        let t = Tensor {
            dtype: DType::U8,
            shape: shape.iter().map(|&d| d as u32).collect(),
            data: values.to_vec(),
        };
        t.check("tensor")?;
        Ok(t)
    }

    /// Number of elements (product of the shape; `None` on overflow).
    pub fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
    }

    /// The shape as `usize`s.
    pub fn dims(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }

    /// Checks that the byte length matches dtype × shape; `field` names the tensor in errors.
    pub fn check(&self, field: &'static str) -> Result<(), MsgError> {
        let expected = self
            .numel()
            .and_then(|n| n.checked_mul(self.dtype.size()))
            .ok_or_else(|| MsgError::invalid(field, format!("shape {:?} overflows", self.shape)))?;
        if expected != self.data.len() {
            return Err(MsgError::invalid(
                field,
                format!(
                    "shape {:?} of {:?} needs {expected} bytes, got {}",
                    self.shape,
                    self.dtype,
                    self.data.len()
                ),
            ));
        }
        Ok(())
    }

    /// Decodes f32 elements into `out` (cleared first; no allocation when its capacity
    /// suffices). Errors on another dtype.
    pub fn read_f32_into(&self, out: &mut Vec<f32>) -> Result<(), MsgError> {
        if self.dtype != DType::F32 {
            return Err(MsgError::invalid(
                "tensor",
                format!("expected f32, got {:?}", self.dtype),
            ));
        }
        out.clear();
        out.extend(
            self.data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(())
    }

    /// The f32 elements, row-major. Errors on another dtype.
    pub fn to_f32(&self) -> Result<Vec<f32>, MsgError> {
        let mut out = Vec::with_capacity(self.data.len() / 4);
        self.read_f32_into(&mut out)?;
        Ok(out)
    }
}
