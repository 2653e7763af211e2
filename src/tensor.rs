//! Small helpers between host arrays and ONNX Runtime values: feed a graph the
//! element type it declares (f32 / f16 / int64 / int32) and read float outputs
//! back whatever their precision.

use ndarray::{ArrayD, IxDyn};
use ort::value::{DynValue, Tensor, TensorElementType};

use crate::error::{Error, Result};
use crate::runtime::device::require_host_value;

/// Build a float tensor of the declared element type from f32 data.
pub fn float_value(data: ArrayD<f32>, dtype: TensorElementType, stage: &str, tensor: &str) -> Result<DynValue> {
    let err = |e: ort::Error| Error::stage(stage, &format!("creating tensor {tensor}"), e);
    match dtype {
        TensorElementType::Float32 => Ok(Tensor::from_array(data).map_err(err)?.into_dyn()),
        TensorElementType::Float16 => {
            Ok(Tensor::from_array(data.mapv(half::f16::from_f32)).map_err(err)?.into_dyn())
        }
        other => Err(unsupported(stage, tensor, "float32 or float16", other)),
    }
}

/// Build an integer tensor (int64 or int32, as declared) of the given shape.
pub fn int_value(shape: &[usize], data: Vec<i64>, dtype: TensorElementType, stage: &str, tensor: &str) -> Result<DynValue> {
    let err = |e: ort::Error| Error::stage(stage, &format!("creating tensor {tensor}"), e);
    let shape = shape.to_vec();
    match dtype {
        TensorElementType::Int64 => Ok(Tensor::from_array((shape, data)).map_err(err)?.into_dyn()),
        TensorElementType::Int32 => {
            let data: Vec<i32> = data.into_iter().map(|v| v as i32).collect();
            Ok(Tensor::from_array((shape, data)).map_err(err)?.into_dyn())
        }
        other => Err(unsupported(stage, tensor, "int64 or int32", other)),
    }
}

/// Copy a float tensor (f32 or f16) into an f32 host array.
pub fn to_f32_array(value: &DynValue, stage: &str, tensor: &str) -> Result<ArrayD<f32>> {
    let err = |e: ort::Error| Error::stage(stage, &format!("reading tensor {tensor}"), e);
    require_host_value(value, stage, tensor, "copying to a host array")?;
    match element_type(value) {
        Some(TensorElementType::Float32) => Ok(value.try_extract_array::<f32>().map_err(err)?.to_owned()),
        Some(TensorElementType::Float16) => {
            Ok(value.try_extract_array::<half::f16>().map_err(err)?.mapv(half::f16::to_f32))
        }
        other => Err(Error::Tensor {
            stage: stage.into(),
            tensor: tensor.into(),
            expected: "float32 or float16".into(),
            found: format!("{other:?}"),
        }),
    }
}

/// The last axis-1 position's row of every batch entry of a `[batch, seq, n]`
/// float tensor, as f32, concatenated (`batch * n` values; one row for batch 1).
/// Used to read the last position's logits without copying the whole tensor.
pub fn last_rows_f32(value: &DynValue, stage: &str, tensor: &str, out: &mut Vec<f32>) -> Result<()> {
    let err = |e: ort::Error| Error::stage(stage, &format!("reading tensor {tensor}"), e);
    let shape_err = |shape: &[i64]| Error::Tensor {
        stage: stage.into(),
        tensor: tensor.into(),
        expected: "shape [batch, seq, n] with seq >= 1".into(),
        found: format!("{shape:?}"),
    };
    require_host_value(value, stage, tensor, "reading the last row")?;
    out.clear();
    match element_type(value) {
        Some(TensorElementType::Float32) => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
            let n = last_dim(shape).ok_or_else(|| shape_err(shape))?;
            for entry in data.chunks_exact(data.len() / shape[0] as usize) {
                out.extend_from_slice(&entry[entry.len() - n..]);
            }
        }
        Some(TensorElementType::Float16) => {
            let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(err)?;
            let n = last_dim(shape).ok_or_else(|| shape_err(shape))?;
            for entry in data.chunks_exact(data.len() / shape[0] as usize) {
                out.extend(entry[entry.len() - n..].iter().map(|v| v.to_f32()));
            }
        }
        other => {
            return Err(Error::Tensor {
                stage: stage.into(),
                tensor: tensor.into(),
                expected: "float32 or float16".into(),
                found: format!("{other:?}"),
            })
        }
    }
    Ok(())
}

fn last_dim(shape: &[i64]) -> Option<usize> {
    if shape.len() != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 {
        return None;
    }
    Some(shape[2] as usize)
}

/// Element type of a tensor value, `None` for non-tensors.
pub fn element_type(value: &DynValue) -> Option<TensorElementType> {
    value.dtype().tensor_type()
}

/// Dimensions of a tensor value.
pub fn dims(value: &DynValue) -> Vec<i64> {
    value.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default()
}

/// A zero-filled float tensor of a declared type (used for empty KV caches, `seq = 0`).
pub fn zeros(shape: &[usize], dtype: TensorElementType, stage: &str, tensor: &str) -> Result<DynValue> {
    float_value(ArrayD::zeros(IxDyn(shape)), dtype, stage, tensor)
}

fn unsupported(stage: &str, tensor: &str, expected: &str, found: TensorElementType) -> Error {
    Error::Tensor { stage: stage.into(), tensor: tensor.into(), expected: expected.into(), found: format!("{found:?}") }
}

/// Address of a tensor's data buffer (device memory for GPU tensors): the
/// identity of a buffer, used to check that values are moved, not copied.
pub fn data_address(value: &DynValue) -> Option<usize> {
    let tensor = value.view().downcast::<ort::value::DynTensorValueType>().ok()?;
    Some(tensor.data_ptr() as usize)
}

/// `value` in the declared float element type: moved through unchanged when it
/// already is, converted through the host otherwise.
pub fn cast_float(value: DynValue, dtype: TensorElementType, stage: &str, tensor: &str) -> Result<DynValue> {
    if element_type(&value) == Some(dtype) {
        return Ok(value);
    }
    let host = to_f32_array(&value, stage, tensor)?;
    float_value(host, dtype, stage, tensor)
}

/// Bytes per element of a numeric tensor type.
pub fn element_size(dtype: TensorElementType, stage: &str, tensor: &str) -> Result<usize> {
    use TensorElementType as T;
    Ok(match dtype {
        T::Float64 | T::Int64 | T::Uint64 => 8,
        T::Float32 | T::Int32 | T::Uint32 => 4,
        T::Float16 | T::Bfloat16 | T::Int16 | T::Uint16 => 2,
        T::Int8 | T::Uint8 | T::Bool => 1,
        other => return Err(unsupported(stage, tensor, "a numeric tensor type", other)),
    })
}
